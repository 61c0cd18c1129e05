"""The one ReasonCode type: every table keyed by it covers exactly its values, and the event model,
the remedy, the resume rules and the renderers all take their codes from it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from integrator import followup_template, reasons
from integrator.blocked import remedy
from integrator.errors import InvalidInput
from integrator.events import IntegrationBlocked
from integrator.reasons import REASON_CODES, ReasonCode, ResumeWhen
from teleclaude.adapters import discord_render

TABLES: dict[str, Any] = {
    "reasons.REASONS": reasons.REASONS,
    "blocked.remedy.REMEDIES": remedy.REMEDIES,
    "discord_render.REASONS": discord_render.REASONS,
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_table_covers_exactly_the_reason_codes(name: str) -> None:
    table = TABLES[name]
    assert set(table) == set(ReasonCode), name
    assert all(isinstance(key, ReasonCode) for key in table), name


def test_the_codes_are_the_stored_texts() -> None:
    assert [str(c) for c in REASON_CODES] == [
        "merge_conflict",
        "verify_failed",
        "push_rejected",
        "branch_moved",
        "not_reachable",
        "git_error",
    ]
    assert all(reasons.REASONS[c].code is c for c in ReasonCode)


def _blocked(code: object) -> dict[str, Any]:
    return {
        "slug": "s",
        "branch": "b",
        "sha": "a" * 40,
        "reason_code": code,
        "evidence": {},
        "next_action": "x",
        "blocked_at": "2026-01-01T00:00:00Z",
    }


@pytest.mark.parametrize("code", REASON_CODES)
def test_the_event_model_takes_each_code_as_text_and_writes_it_back_as_text(code: ReasonCode) -> None:
    model = IntegrationBlocked.model_validate(_blocked(str(code)))
    assert model.reason_code is code
    assert model.model_dump(mode="json")["reason_code"] == code.value


@pytest.mark.parametrize("bad", ["exploded", "", "MERGE_CONFLICT", 1])
def test_the_event_model_refuses_anything_else(bad: object) -> None:
    with pytest.raises(ValidationError, match="reason_code"):
        IntegrationBlocked.model_validate(_blocked(bad))


def test_check_reason_code_names_the_bad_value_and_the_choices() -> None:
    assert reasons.check_reason_code("git_error") is ReasonCode.GIT_ERROR
    with pytest.raises(InvalidInput, match=r"reason_code: unknown 'nope' \(expected one of merge_conflict, "):
        reasons.check_reason_code("nope")


def test_resume_rules() -> None:
    rules = {c: reasons.resume_when(c) for c in REASON_CODES}
    assert rules == {
        ReasonCode.MERGE_CONFLICT: ResumeWhen.MAIN_OR_CONFIG_CHANGED,
        ReasonCode.VERIFY_FAILED: ResumeWhen.MAIN_OR_CONFIG_CHANGED,
        ReasonCode.PUSH_REJECTED: ResumeWhen.OPERATOR_SAYS_SO,
        ReasonCode.BRANCH_MOVED: ResumeWhen.BRANCH_HOLDS_SHA,
        ReasonCode.NOT_REACHABLE: ResumeWhen.BRANCH_HOLDS_SHA,
        ReasonCode.GIT_ERROR: ResumeWhen.OPERATOR_SAYS_SO,
    }
    # A block stored by a newer version: the strictest rule, so resume cannot skip a real change.
    assert reasons.resume_when("from_the_future") is ResumeWhen.MAIN_OR_CONFIG_CHANGED


def test_summaries_fill_in_the_main_branch() -> None:
    assert reasons.summary(ReasonCode.PUSH_REJECTED, main_branch="trunk") == (
        "every push of trunk was rejected because trunk kept moving"
    )
    assert all("{" not in reasons.summary(c, main_branch="m") for c in REASON_CODES)


def test_the_discord_label_of_a_code_this_version_does_not_know_is_its_words() -> None:
    assert discord_render.reason_label("not_reachable") == "sha not reachable"
    assert discord_render.reason_label("from_the_future") == "from the future"


def test_the_template_help_lists_every_code() -> None:
    text = followup_template.PLACEHOLDERS["reason_code"]
    assert text == "merge_conflict, verify_failed, push_rejected, branch_moved, not_reachable or git_error"
