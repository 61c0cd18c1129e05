"""Notifications to deliver (docs/discord.md): written in the step's transaction, read in order per consumer.

Each consumer (console, discord) keeps a cursor; the head notification is retried with backoff
until delivered, so delivery is in order, never lost, and a crash between send and ack re-sends at
most the one notification (the Discord adapter passes a nonce derived from the id so Discord drops it).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from integrator import notifications
from integrator.backoff import Backoff
from integrator.events import canonical_json
from integrator.models import Backlog
from integrator.notifications import Payload
from integrator.store import one, rows

# The head's retries: 1 s, 2 s, 4 s, … up to five minutes while its channel stays down.
DELIVERY_BACKOFF = Backoff(first_s=1.0, max_s=300.0)


@dataclass(frozen=True)
class Notification:
    """One outbox row as read: ``payload`` is its kind's model, or None when it cannot be one.

    None with a ``problem`` is a row that does not fit its kind's model; None without one is a kind
    this version does not know. Both are still delivered (as their stored ``data``): the outbox must
    not stall behind them.
    """

    id: int
    kind: str
    data: Any
    created_at: str
    payload: Payload | None = None
    problem: str | None = None

    @classmethod
    def read(cls, nid: int, kind: str, data: Any, created_at: str) -> Notification:
        try:
            return cls(nid, kind, data, created_at, notifications.parse(kind, data))
        except notifications.InvalidPayload as err:
            return cls(nid, kind, data, created_at, problem=str(err))


def add(conn: sqlite3.Connection, payload: Payload, *, now: str) -> int:
    cur = conn.execute(
        "INSERT INTO outbox (kind, payload, created_at) VALUES (?, ?, ?)",
        (payload.kind, canonical_json(payload.stored()), now),
    )
    return int(cur.lastrowid or 0)


def _cursor(conn: sqlite3.Connection, consumer: str) -> sqlite3.Row:
    row = one(conn, "SELECT * FROM outbox_cursors WHERE consumer = ?", (consumer,))
    if row is None:
        # A new consumer starts at the current end: it should not replay history it never owned.
        last = one(conn, "SELECT COALESCE(MAX(id), 0) AS m FROM outbox")
        conn.execute(
            "INSERT INTO outbox_cursors (consumer, last_id) VALUES (?, ?)",
            (consumer, int(last["m"]) if last else 0),
        )
        row = one(conn, "SELECT * FROM outbox_cursors WHERE consumer = ?", (consumer,))
    assert row is not None
    return row


def register(conn: sqlite3.Connection, consumer: str, *, from_start: bool = False) -> None:
    """Make sure ``consumer`` has a cursor (at the start of the outbox, or at its current end)."""
    if from_start:
        conn.execute("INSERT OR IGNORE INTO outbox_cursors (consumer, last_id) VALUES (?, 0)", (consumer,))
    else:
        _cursor(conn, consumer)


def pending(conn: sqlite3.Connection, consumer: str, *, now: float, limit: int = 50) -> list[Notification]:
    """The next notifications for ``consumer``, or nothing while its head is backing off."""
    cursor = _cursor(conn, consumer)
    if cursor["next_attempt_at"] > now:
        return []
    found = rows(
        conn,
        "SELECT id, kind, payload, created_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
        (cursor["last_id"], limit),
    )
    return [Notification.read(r["id"], r["kind"], json.loads(r["payload"]), r["created_at"]) for r in found]


def ack(conn: sqlite3.Connection, consumer: str, notification_id: int) -> None:
    conn.execute(
        "UPDATE outbox_cursors SET last_id = MAX(last_id, ?), attempts = 0, next_attempt_at = 0, last_error = NULL"
        " WHERE consumer = ?",
        (notification_id, consumer),
    )


def fail(conn: sqlite3.Connection, consumer: str, error: str, *, now: float) -> float:
    """Record a failed delivery of the head; returns when to try again (exponential backoff)."""
    cursor = _cursor(conn, consumer)
    attempts = int(cursor["attempts"]) + 1
    delay = DELIVERY_BACKOFF.delay(attempts - 1)
    conn.execute(
        "UPDATE outbox_cursors SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE consumer = ?",
        (attempts, now + delay, error[:500], consumer),
    )
    return now + delay


def retry_now(conn: sqlite3.Connection, consumer: str) -> None:
    """Forget the backoff of ``consumer``'s head: its channel is back (e.g. the gateway reconnected)."""
    conn.execute("UPDATE outbox_cursors SET next_attempt_at = 0 WHERE consumer = ?", (consumer,))


def backlog(conn: sqlite3.Connection) -> list[Backlog]:
    """Per consumer: how many notifications wait and the last error (for status)."""
    out = []
    for c in rows(conn, "SELECT * FROM outbox_cursors ORDER BY consumer"):
        waiting = one(conn, "SELECT COUNT(*) AS n FROM outbox WHERE id > ?", (c["last_id"],))
        out.append(
            Backlog(
                consumer=c["consumer"],
                waiting=int(waiting["n"]) if waiting else 0,
                attempts=c["attempts"],
                last_error=c["last_error"],
            )
        )
    return out
