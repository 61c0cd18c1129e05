"""The outbox payload models: checked when a producer builds one, parsed back when a row is read."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from integrator import notifications, outbox
from integrator.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "discord"))
import samples


def test_every_kind_the_renderers_know_has_a_model_and_fault_is_gone() -> None:
    assert {n["kind"] for n in samples.every_kind()} == set(notifications.KINDS)
    assert "fault" not in notifications.KINDS


@pytest.mark.parametrize("sample", samples.every_kind(), ids=lambda n: str(n["kind"]))
def test_a_stored_payload_reads_back_as_its_model_and_stores_the_same_json(sample: dict[str, object]) -> None:
    payload = notifications.parse(str(sample["kind"]), sample["payload"])
    assert payload is not None and payload.kind == sample["kind"]
    assert payload.stored() == sample["payload"]


def test_a_producer_cannot_build_a_payload_of_the_wrong_shape() -> None:
    with pytest.raises(ValidationError, match="position"):
        notifications.CandidateReady(slug="a", branch="b", sha="c", position="2")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="position"):
        notifications.CandidateReady(slug="a", branch="b", sha="c", position=True)


async def test_outbox_rows_are_written_from_models_and_read_back_typed(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "o.db")

    def write(conn: sqlite3.Connection) -> None:
        outbox.register(conn, "console", from_start=True)
        outbox.add(conn, notifications.Paused(by="alice", at="t", reason="freeze"), now="t")
        # Rows another version could have left: an older shape, a newer kind.
        conn.execute(
            "INSERT INTO outbox (kind, payload, created_at) VALUES (?, ?, ?)",
            ("candidate_ready", json.dumps({"slug": "a", "branch": "b", "sha": "c"}), "t"),
        )
        conn.execute("INSERT INTO outbox (kind, payload, created_at) VALUES ('newer_kind', '{}', 't')")

    try:
        await store.write(write)
        paused, broken, unknown = await store.write(lambda c: outbox.pending(c, "console", now=0))
        stored = await store.read(lambda c: c.execute("SELECT payload FROM outbox ORDER BY id").fetchone()[0])
    finally:
        await store.close()
    assert paused.payload == notifications.Paused(by="alice", at="t", reason="freeze")
    assert json.loads(stored) == {"at": "t", "by": "alice", "reason": "freeze"}
    assert broken.payload is None and broken.problem == "candidate_ready: missing field 'position'"
    assert unknown.payload is None and unknown.problem is None and unknown.data == {}
