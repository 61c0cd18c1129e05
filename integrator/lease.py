"""The singleton lease: compare-and-set in one statement, TTL, renewal, fencing.

Times are epoch seconds from the caller's clock; every process compares them against its own
wall clock, so hosts sharing a database must keep their clocks in sync (NTP), as with any TTL lease.

The lease alone cannot stop a paused holder, so its fencing number is checked where the writes
land: :func:`fenced` makes a store step commit only while the row still names this holder and
number, and the remote's pre-receive hook refuses a push of main carrying a lower number than it
has seen (``integrator.fence``).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from integrator import procs
from integrator.errors import LeaseLost
from integrator.store import one

MAIN_LEASE = "integration/main"
T = TypeVar("T")


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


def _gone_local_holder(conn: sqlite3.Connection, key: str) -> str | None:
    """The token of a holder on this host whose process is gone (crashed), so it can be taken at once."""
    row = one(conn, "SELECT holder, token, holder_started FROM leases WHERE key = ?", (key,))
    if row is None or row["token"] is None or row["holder"] is None or row["holder_started"] is None:
        return None
    holder = procs.Holder.from_name(row["holder"], row["holder_started"])
    if holder is None or not holder.local or holder.alive():
        return None
    return str(row["token"])


def acquire(
    conn: sqlite3.Connection,
    key: str,
    holder: str,
    *,
    now: float,
    ttl: float,
    started: str | None = None,
) -> Lease | None:
    """Take the lease if it is free, expired, or held by a same-host process that is gone.

    Each acquisition increments the fencing counter. ``started`` is the caller's process start
    stamp (``procs.Holder.stamp``); with it, the next process on this host can tell this one died.
    """
    token = uuid.uuid4().hex
    row = one(
        conn,
        "INSERT INTO leases (key, holder, token, fencing, acquired_at, renewed_at, expires_at, holder_started)"
        " VALUES (?, ?, ?, 1, ?, ?, ?, ?)"
        " ON CONFLICT(key) DO UPDATE SET holder = excluded.holder, token = excluded.token,"
        " fencing = leases.fencing + 1, acquired_at = excluded.acquired_at,"
        " renewed_at = excluded.renewed_at, expires_at = excluded.expires_at,"
        " holder_started = excluded.holder_started"
        " WHERE leases.token IS NULL OR leases.expires_at <= excluded.acquired_at OR leases.token = ?"
        " RETURNING fencing",
        (key, holder, token, now, now, now + ttl, started, _gone_local_holder(conn, key)),
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


def check_fence(conn: sqlite3.Connection, lease: Lease) -> None:
    """Raise LeaseLost unless the row still carries this holder's token and fencing number."""
    row = one(
        conn,
        "SELECT fencing FROM leases WHERE key = ? AND token = ? AND fencing = ?",
        (lease.key, lease.token, lease.fencing),
    )
    if row is None:
        raise LeaseLost(f"lease {lease.key} is no longer ours (fencing {lease.fencing}); nothing written")


def fenced(lease: Lease, fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """``fn`` as a store step that first checks the fence, inside the same transaction.

    A holder paused between its lease check and its write (past the TTL, while another took over)
    then changes nothing: the check and the write commit together or not at all.
    """

    def step(conn: sqlite3.Connection) -> T:
        check_fence(conn, lease)
        return fn(conn)

    return step


def release(conn: sqlite3.Connection, lease: Lease) -> bool:
    cur = conn.execute(
        "UPDATE leases SET holder = NULL, token = NULL, expires_at = 0 WHERE key = ? AND token = ?",
        (lease.key, lease.token),
    )
    return cur.rowcount == 1


def holder_until(conn: sqlite3.Connection, key: str) -> tuple[str, float] | None:
    """(holder, expires_at) as the row has it, expired or not; None when nobody holds it."""
    row = one(conn, "SELECT holder, expires_at FROM leases WHERE key = ?", (key,))
    if row is None or row["holder"] is None:
        return None
    return str(row["holder"]), float(row["expires_at"])


def info(conn: sqlite3.Connection, key: str, *, now: float) -> LeaseInfo | None:
    """The current holder, or None when the lease is free or expired."""
    row = one(conn, "SELECT holder, fencing, expires_at, renewed_at FROM leases WHERE key = ?", (key,))
    if row is None or row["holder"] is None or row["expires_at"] <= now:
        return None
    return LeaseInfo(row["holder"], int(row["fencing"]), float(row["expires_at"]), row["renewed_at"])
