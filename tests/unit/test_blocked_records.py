"""The blocked-flow rows (``blocked_evidence``, ``followups``) on a real SQLite store: written only
through their owning modules, on the caller's connection, so a block is still one transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from integrator import followup, queue
from integrator.blocked import records
from integrator.followup import FollowUp
from integrator.reasons import ReasonCode
from integrator.store import Store

NOW = "2026-01-01T00:00:00.000000Z"
LATER = "2026-01-02T00:00:00.000000Z"


def _queued(conn: sqlite3.Connection, slug: str, sha: str) -> int:
    """A queue item for (slug, feat/slug, sha); the candidate row is test wiring, the queue is real."""
    cur = conn.execute(
        "INSERT INTO candidates (slug, branch, sha, finalize_event_id, ready_at, received_at, status,"
        " updated_at) VALUES (?, ?, ?, 'e', ?, ?, 'ready', ?)",
        (slug, f"feat/{slug}", sha, NOW, NOW, NOW),
    )
    assert cur.lastrowid is not None
    return queue.enqueue(conn, cur.lastrowid, order_at=NOW, now=NOW, reason="test").id


def _note(tmp_path: Path, slug: str) -> FollowUp:
    todo = followup.followup_slug(slug)
    return FollowUp(slug=todo, path=tmp_path / todo, created=True, blocked_count=1)


async def test_rows_round_trip_and_a_repeat_block_counts(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite")
    try:
        note = _note(tmp_path, "feat-a")
        qid = await store.write(lambda c: _queued(c, "feat-a", "1" * 40))

        def block(
            conn: sqlite3.Connection, reason: ReasonCode, evidence: dict[str, object], now: str
        ) -> None:
            records.save(conn, qid, reason, evidence, f"fix {reason}", now=now)
            followup.record_block(conn, note, slug="feat-a", sha="1" * 40, now=now)

        await store.write(lambda c: block(c, ReasonCode.MERGE_CONFLICT, {"hunks_full": {"a": "x" * 10}}, NOW))
        await store.write(lambda c: block(c, ReasonCode.VERIFY_FAILED, {"log_full": "boom"}, LATER))
        got = await store.read(lambda c: records.get(c, qid))
        assert got == records.Record({"log_full": "boom"}, "fix verify_failed", LATER)
        full = await store.read(
            lambda c: records.full_evidence(c, "feat-a", "feat/feat-a", "1" * 40, "verify_failed")
        )
        assert full == {"log_full": "boom"}
        # The earlier block's evidence was replaced: asked for by its reason, it is gone.
        gone = await store.read(
            lambda c: records.full_evidence(c, "feat-a", "feat/feat-a", "1" * 40, "merge_conflict")
        )
        assert gone is None
        row = await store.read(lambda c: followup.record_of(c, "feat-a"))
        assert row is not None
        assert row.model_dump() == {
            "todo_slug": note.slug,
            "path": str(note.path),
            "status": "open",
            "blocked_count": 2,
        }

        await store.write(lambda c: followup.record_resolved(c, "feat-a", now=LATER))
        await store.write(lambda c: followup.record_resolved(c, "never-blocked", now=LATER))
        assert await store.read(followup.records) == [("feat-a", "resolved")]
        assert await store.read(lambda c: records.get(c, qid + 1)) is None
        assert await store.read(lambda c: followup.record_of(c, "never-blocked")) is None
    finally:
        await store.close()


async def test_a_block_that_fails_midway_leaves_neither_row(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite")
    try:
        qid = await store.write(lambda c: _queued(c, "feat-b", "2" * 40))

        def block(conn: sqlite3.Connection) -> None:
            records.save(conn, qid, ReasonCode.GIT_ERROR, {"stderr": "x"}, "retry", now=NOW)
            followup.record_block(conn, _note(tmp_path, "feat-b"), slug="feat-b", sha="2" * 40, now=NOW)
            raise RuntimeError("the process died here")

        with pytest.raises(RuntimeError):
            await store.write(block)
        assert await store.read(lambda c: records.get(c, qid)) is None
        assert await store.read(followup.records) == []
    finally:
        await store.close()
