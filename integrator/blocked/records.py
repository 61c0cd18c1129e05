"""The ``blocked_evidence`` table: per queue item, the newest block's full evidence and next action.

Events and notifications carry the trimmed evidence; this row keeps the ``*_full`` texts for
``integrator blocked`` and for Discord's attachments. Every function takes the caller's connection,
so a block's row is written inside the block's one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from integrator.reasons import ReasonCode
from integrator.store import one


@dataclass(frozen=True)
class Record:
    evidence: dict[str, Any]
    next_action: str
    updated_at: str


def save(
    conn: sqlite3.Connection,
    queue_id: int,
    reason_code: ReasonCode,
    evidence: dict[str, Any],
    next_action: str,
    *,
    now: str,
) -> None:
    """Keep this block's evidence for the queue item, replacing an earlier block's."""
    conn.execute(
        "INSERT INTO blocked_evidence (queue_id, reason_code, evidence, next_action, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT(queue_id) DO UPDATE SET reason_code = excluded.reason_code,"
        " evidence = excluded.evidence, next_action = excluded.next_action, updated_at = excluded.updated_at",
        (queue_id, reason_code.value, json.dumps(evidence, sort_keys=True), next_action, now),
    )


def get(conn: sqlite3.Connection, queue_id: int) -> Record | None:
    row = one(
        conn, "SELECT evidence, next_action, updated_at FROM blocked_evidence WHERE queue_id = ?", (queue_id,)
    )
    if row is None:
        return None
    return Record(dict(json.loads(row["evidence"])), str(row["next_action"]), str(row["updated_at"]))


def full_evidence(
    conn: sqlite3.Connection, slug: str, branch: str, sha: str, reason_code: str
) -> dict[str, Any] | None:
    """The untrimmed evidence the store keeps for a block of (slug, branch, sha), if it is still the one
    with ``reason_code`` (a later block of the same candidate replaces it)."""
    row = one(
        conn,
        "SELECT e.evidence FROM blocked_evidence e JOIN queue q ON q.id = e.queue_id"
        " JOIN candidates c ON c.id = q.candidate_id"
        " WHERE c.slug = ? AND c.branch = ? AND c.sha = ? AND e.reason_code = ?",
        (slug, branch, sha, reason_code),
    )
    return dict(json.loads(row["evidence"])) if row else None
