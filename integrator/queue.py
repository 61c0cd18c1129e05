"""The durable FIFO queue: enqueue, the transition DAG, and the audit trail."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from integrator.errors import IllegalTransition, StaleState
from integrator.store import one, rows

STATUSES = ("queued", "in_progress", "integrated", "blocked", "superseded")
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("queued", "in_progress"),
        ("in_progress", "integrated"),
        ("in_progress", "blocked"),
        ("in_progress", "superseded"),
        ("in_progress", "queued"),  # recovery only
        ("queued", "superseded"),
        ("blocked", "queued"),  # resume
        ("blocked", "superseded"),
    }
)
TERMINAL = frozenset({"integrated", "superseded"})


@dataclass(frozen=True)
class Item:
    id: int
    candidate_id: int
    slug: str
    branch: str
    sha: str
    status: str
    order_at: str
    ready_at: str
    attempts: int
    block_reason: str | None
    block_main: str | None
    block_config: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "branch": self.branch,
            "sha": self.sha,
            "status": self.status,
            "ready_at": self.ready_at,
            "attempts": self.attempts,
        }


_SELECT = (
    "SELECT q.id, q.candidate_id, c.slug, c.branch, c.sha, q.status, q.order_at, c.ready_at, q.attempts,"
    " q.block_reason, q.block_main, q.block_config FROM queue q JOIN candidates c ON c.id = q.candidate_id"
)


def _item(row: sqlite3.Row) -> Item:
    return Item(*row)


def check_transition(src: str, dst: str) -> None:
    if (src, dst) not in ALLOWED:
        raise IllegalTransition(f"queue transition {src} -> {dst} is not allowed")


def enqueue(conn: sqlite3.Connection, candidate_id: int, *, order_at: str, now: str, reason: str) -> Item:
    """Add the candidate to the queue; a second enqueue of the same candidate returns the existing item."""
    existing = get_by_candidate(conn, candidate_id)
    if existing is not None:
        return existing
    cur = conn.execute(
        "INSERT INTO queue (candidate_id, status, order_at, enqueued_at, updated_at) VALUES (?, 'queued', ?, ?, ?)",
        (candidate_id, order_at, now, now),
    )
    queue_id = int(cur.lastrowid or 0)
    conn.execute(
        "INSERT INTO transitions (queue_id, from_status, to_status, reason, at) VALUES (?, NULL, 'queued', ?, ?)",
        (queue_id, reason, now),
    )
    item = get(conn, queue_id)
    assert item is not None
    return item


def transition(
    conn: sqlite3.Connection,
    queue_id: int,
    src: str,
    dst: str,
    *,
    reason: str,
    now: str,
    fencing: int | None = None,
    order_at: str | None = None,
) -> None:
    """Move an item ``src -> dst`` with compare-and-set on ``src``; record the transition."""
    check_transition(src, dst)
    cur = conn.execute(
        "UPDATE queue SET status = ?, updated_at = ?, order_at = COALESCE(?, order_at),"
        " attempts = attempts + (CASE WHEN ? = 'in_progress' THEN 1 ELSE 0 END)"
        " WHERE id = ? AND status = ?",
        (dst, now, order_at, dst, queue_id, src),
    )
    if cur.rowcount != 1:
        found = one(conn, "SELECT status FROM queue WHERE id = ?", (queue_id,))
        actual = found["status"] if found else "missing"
        raise StaleState(f"queue item {queue_id} is {actual}, expected {src} (wanted {dst})")
    conn.execute(
        "INSERT INTO transitions (queue_id, from_status, to_status, reason, at, fencing) VALUES (?, ?, ?, ?, ?, ?)",
        (queue_id, src, dst, reason, now, fencing),
    )


def get(conn: sqlite3.Connection, queue_id: int) -> Item | None:
    row = one(conn, _SELECT + " WHERE q.id = ?", (queue_id,))
    return _item(row) if row else None


def get_by_candidate(conn: sqlite3.Connection, candidate_id: int) -> Item | None:
    row = one(conn, _SELECT + " WHERE q.candidate_id = ?", (candidate_id,))
    return _item(row) if row else None


def head(conn: sqlite3.Connection) -> Item | None:
    """The next item to integrate: FIFO by readiness time, ties by enqueue order."""
    row = one(conn, _SELECT + " WHERE q.status = 'queued' ORDER BY q.order_at, q.id LIMIT 1")
    return _item(row) if row else None


def in_progress(conn: sqlite3.Connection) -> list[Item]:
    return [_item(r) for r in rows(conn, _SELECT + " WHERE q.status = 'in_progress' ORDER BY q.id")]


def by_status(conn: sqlite3.Connection, *statuses: str, limit: int = 1000) -> list[Item]:
    marks = ",".join("?" * len(statuses))
    return [
        _item(r)
        for r in rows(
            conn,
            _SELECT + f" WHERE q.status IN ({marks}) ORDER BY q.order_at, q.id LIMIT ?",
            (*statuses, limit),
        )
    ]


def position(conn: sqlite3.Connection, queue_id: int) -> int | None:
    """1-based position among queued items, or None if the item is not queued."""
    item = one(conn, "SELECT status, order_at FROM queue WHERE id = ?", (queue_id,))
    if item is None or item["status"] != "queued":
        return None
    ahead = one(
        conn,
        "SELECT COUNT(*) AS n FROM queue WHERE status = 'queued' AND (order_at < ? OR (order_at = ? AND id < ?))",
        (item["order_at"], item["order_at"], queue_id),
    )
    return int(ahead["n"] if ahead else 0) + 1


def record_block(
    conn: sqlite3.Connection, queue_id: int, *, reason: str, main_sha: str | None, config: str
) -> None:
    """What a block was decided against (``resume`` compares them): its reason, main, the config."""
    conn.execute(
        "UPDATE queue SET block_reason = ?, block_main = ?, block_config = ? WHERE id = ?",
        (reason, main_sha, config, queue_id),
    )


def waiting(conn: sqlite3.Connection) -> tuple[int, str | None]:
    """How many items are queued or in flight, and the oldest change among them."""
    row = one(
        conn,
        "SELECT COUNT(*) AS n, MIN(updated_at) AS oldest FROM queue WHERE status IN ('queued', 'in_progress')",
    )
    return (int(row["n"]), row["oldest"]) if row else (0, None)


def last_outcome_at(conn: sqlite3.Connection) -> str | None:
    """When an item last reached an outcome (integrated, blocked, superseded)."""
    row = one(
        conn,
        "SELECT MAX(at) AS at FROM transitions WHERE to_status IN ('integrated', 'blocked', 'superseded')",
    )
    return row["at"] if row else None


def blocked_reasons(conn: sqlite3.Connection) -> list[tuple[str, str | None]]:
    """(slug, reason code) of every blocked item, in the order they were blocked."""
    found = rows(
        conn,
        "SELECT c.slug, q.block_reason FROM queue q JOIN candidates c ON c.id = q.candidate_id"
        " WHERE q.status = 'blocked' ORDER BY q.updated_at, q.id",
    )
    return [(str(r["slug"]), r["block_reason"]) for r in found]
