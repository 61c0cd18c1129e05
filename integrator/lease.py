"""The singleton lease (DESIGN §6): compare-and-set in one statement, TTL, renewal, fencing.

Times are epoch seconds from the caller's clock; every process compares them against its own
wall clock, so hosts sharing a database must keep their clocks in sync (NTP), as with any TTL lease.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass

from integrator.store import one

MAIN_LEASE = "integration/main"


@dataclass(frozen=True)
class Lease:
    key: str
    holder: str
    token: str
    fencing: int
    expires_at: float


@dataclass(frozen=True)
class LeaseInfo:
    holder: str | None
    fencing: int
    expires_at: float
    renewed_at: float | None


def acquire(conn: sqlite3.Connection, key: str, holder: str, *, now: float, ttl: float) -> Lease | None:
    """Take the lease if it is free or expired; each acquisition increments the fencing counter."""
    token = uuid.uuid4().hex
    row = one(
        conn,
        "INSERT INTO leases (key, holder, token, fencing, acquired_at, renewed_at, expires_at)"
        " VALUES (?, ?, ?, 1, ?, ?, ?)"
        " ON CONFLICT(key) DO UPDATE SET holder = excluded.holder, token = excluded.token,"
        " fencing = leases.fencing + 1, acquired_at = excluded.acquired_at,"
        " renewed_at = excluded.renewed_at, expires_at = excluded.expires_at"
        " WHERE leases.token IS NULL OR leases.expires_at <= excluded.acquired_at"
        " RETURNING fencing",
        (key, holder, token, now, now, now + ttl),
    )
    if row is None:
        return None
    return Lease(key, holder, token, int(row["fencing"]), now + ttl)


def renew(conn: sqlite3.Connection, lease: Lease, *, now: float, ttl: float) -> Lease | None:
    """Extend our lease; None if it expired or was taken (then we must stop writing)."""
    row = one(
        conn,
        "UPDATE leases SET renewed_at = ?, expires_at = ? WHERE key = ? AND token = ? AND expires_at > ?"
        " RETURNING fencing",
        (now, now + ttl, lease.key, lease.token, now),
    )
    if row is None:
        return None
    return Lease(lease.key, lease.holder, lease.token, int(row["fencing"]), now + ttl)


def is_held(conn: sqlite3.Connection, lease: Lease, *, now: float) -> bool:
    row = one(
        conn,
        "SELECT 1 FROM leases WHERE key = ? AND token = ? AND fencing = ? AND expires_at > ?",
        (lease.key, lease.token, lease.fencing, now),
    )
    return row is not None


def release(conn: sqlite3.Connection, lease: Lease) -> bool:
    cur = conn.execute(
        "UPDATE leases SET holder = NULL, token = NULL, expires_at = 0 WHERE key = ? AND token = ?",
        (lease.key, lease.token),
    )
    return cur.rowcount == 1


def info(conn: sqlite3.Connection, key: str, *, now: float) -> LeaseInfo | None:
    """The current holder, or None when the lease is free or expired."""
    row = one(conn, "SELECT holder, fencing, expires_at, renewed_at FROM leases WHERE key = ?", (key,))
    if row is None or row["holder"] is None or row["expires_at"] <= now:
        return None
    return LeaseInfo(row["holder"], int(row["fencing"]), float(row["expires_at"]), row["renewed_at"])
