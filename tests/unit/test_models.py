"""The service's models are the CLI's ``--json``: their field names are keys scripts rely on."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from integrator import models
from integrator.cli.common import echo_json

# As `status --json`, `queue --json` and `blocked --json` printed them when they were dicts.
STATUS_KEYS = {
    "mode", "mode_since", "mode_by", "mode_reason", "paused", "pause", "lease", "in_flight", "pipeline",
    "queue", "blocked", "candidates", "recent_outcomes", "fault", "outbox", "repo", "remote",
    "main_branch", "verify_sandbox",
}  # fmt: skip
QUEUE_KEYS = {"id", "slug", "branch", "sha", "status", "ready_at", "attempts", "position"}
BLOCKED_KEYS = (QUEUE_KEYS - {"position"}) | {
    "reason_code", "blocked_on_main", "conflicted_paths", "evidence", "hunks", "next_action",
    "blocked_at", "follow_up",
}  # fmt: skip
JOURNAL_KEYS = {"seq", "event_id", "type", "received_at", "payload"}  # `events --json`, `history --json`
CANDIDATE_KEYS = {"slug", "branch", "sha", "status", "ready_at", "reasons", "reason_codes", "superseded_by"}


def _keys(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_the_json_keys_are_the_ones_scripts_read() -> None:
    assert _keys(models.Status) == STATUS_KEYS
    assert _keys(models.QueueEntry) == QUEUE_KEYS
    assert _keys(models.BlockedEntry) == BLOCKED_KEYS
    assert _keys(models.CandidateView) == CANDIDATE_KEYS
    assert _keys(models.EmittedCandidate) == CANDIDATE_KEYS | {"position"}
    assert _keys(models.JournalEntry) == JOURNAL_KEYS


def test_a_journal_entry_flattens_to_what_the_outcome_lines_read() -> None:
    entry = models.JournalEntry(
        seq=3, event_id="e", type="superseded", received_at="t", payload={"slug": "a", "sha": "c"}
    )
    assert entry.flat() == {"type": "superseded", "slug": "a", "sha": "c"}


def test_echo_json_prints_a_model_as_its_fields(capsys: pytest.CaptureFixture[str]) -> None:
    entry = models.QueueEntry(
        id=1, slug="a", branch="b", sha="c", status="queued", ready_at="t", attempts=0, position=1
    )
    echo_json({"items": [entry]})
    out = capsys.readouterr().out
    assert json.loads(out) == {"items": [entry.model_dump()]}
    assert out == json.dumps({"items": [entry.model_dump()]}, sort_keys=True) + "\n"
