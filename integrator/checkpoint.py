"""The in-flight candidate's phase (the ``checkpoints`` table), written before each side effect."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from integrator.store import one

PHASES = ("dequeued", "verified_ready", "merged", "tested", "pushed", "recorded")


@dataclass(frozen=True)
class Checkpoint:
    queue_id: int
    phase: str
    fencing: int
    data: dict[str, Any]
    updated_at: str


def save(
    conn: sqlite3.Connection, queue_id: int, phase: str, *, fencing: int, data: dict[str, Any], now: str
) -> None:
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}")
    conn.execute(
        "INSERT INTO checkpoints (queue_id, phase, fencing, data, updated_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(queue_id) DO UPDATE SET phase = excluded.phase, fencing = excluded.fencing,"
        " data = excluded.data, updated_at = excluded.updated_at",
        (queue_id, phase, fencing, json.dumps(data, sort_keys=True), now),
    )


def load(conn: sqlite3.Connection, queue_id: int) -> Checkpoint | None:
    row = one(conn, "SELECT * FROM checkpoints WHERE queue_id = ?", (queue_id,))
    if row is None:
        return None
    return Checkpoint(
        row["queue_id"], row["phase"], row["fencing"], json.loads(row["data"]), row["updated_at"]
    )


def delete(conn: sqlite3.Connection, queue_id: int) -> None:
    conn.execute("DELETE FROM checkpoints WHERE queue_id = ?", (queue_id,))
