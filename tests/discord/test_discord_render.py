"""Rendering as data: every kind, Discord's limits, the evidence file, malformed payloads."""

from __future__ import annotations

from typing import Any

import pytest
import samples
from hypothesis import given
from hypothesis import strategies as st

from teleclaude.adapters.discord_format import (
    EMBED_TOTAL_MAX,
    FIELD_VALUE_MAX,
    FIELDS_MAX,
    TITLE_MAX,
    code,
    code_block,
    human_duration,
)
from teleclaude.adapters.discord_render import NotificationError, render


def test_candidate_ready_says_slug_and_position_first() -> None:
    assert (
        render(samples.note(samples.ready())).content
        == "✅ **feat-a** ready — #2 in queue\n`feat/a` @ `0123456789`"
    )
    assert render(samples.note(samples.ready(position=1))).content.startswith(
        "✅ **feat-a** ready — next in queue"
    )


def test_superseded_shows_old_and_new_sha() -> None:
    assert render(samples.note(samples.superseded())).content == (
        "↪️ **feat-a** superseded\n`0123456789` → `fedcba9876` on `feat/a`"
    )


def test_completed_and_already_on_main() -> None:
    assert render(samples.note(samples.completed())).content == (
        "🎉 **feat-a** integrated in 12.3 s\nmain `1111111111` → `fedcba9876`\n`feat/a` @ `0123456789`"
    )
    assert render(samples.note(samples.completed(already_on_main=True))).content == (
        "☑️ **feat-a** was already on main\n`feat/a` @ `0123456789`: nothing to merge"
    )


def test_blocked_conflict_embed_fits_without_file() -> None:
    spec = render(samples.note(samples.blocked()))
    assert spec.content == "⛔ **feat-a** blocked: merge conflict in 2 files"
    assert spec.resume_slug == "feat-a"
    assert spec.files == ()
    assert spec.embeds == (
        {
            "title": "Blocked: feat-a — merge conflict in 2 files",
            "description": "**Next:** Merge main into feat/feat-a, resolve src/app.py, push a new sha.\n"
            "**Follow-up todo:** `feat-a-integration-blocked`\n"
            "`todos/feat-a-integration-blocked`\n"
            "`feat/feat-a` @ `0123456789` onto main `1111111111`",
            "color": 0xE74C3C,
            "fields": [
                {
                    "name": "Conflicted paths (2)",
                    "value": "• `src/app.py`\n• `README.md` (add/add)",
                    "inline": False,
                },
                {"name": "src/app.py", "value": f"```diff\n{samples.HUNK_A.rstrip()}\n```", "inline": False},
                {"name": "Base", "value": "`3333333333`", "inline": True},
            ],
        },
    )


def _huge_conflict(paths: int = 30, hunk_chars: int = 1500) -> dict[str, object]:
    names = [f"pkg/module_{i:02d}.py" for i in range(paths)]
    hunks = {n: f"<<<<<<< main\n{'a' * hunk_chars}\n=======\nb-{n}\n>>>>>>> feat\n" for n in names}
    return {"conflicted_paths": names, "hunks": hunks, "base": samples.BASE, "main": samples.MAIN}


def embed_size(embed: dict[str, Any]) -> int:
    """Characters Discord counts against the 6,000 limit."""
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    total += len(embed.get("footer", {}).get("text", "")) + len(embed.get("author", {}).get("name", ""))
    return total


def _assert_within_limits(embed: dict[str, Any]) -> None:
    assert len(str(embed["title"])) <= TITLE_MAX
    fields = embed.get("fields", [])
    assert isinstance(fields, list)
    assert len(fields) <= FIELDS_MAX
    assert all(len(f["name"]) <= 256 and len(f["value"]) <= FIELD_VALUE_MAX for f in fields)
    assert embed_size(embed) <= EMBED_TOTAL_MAX


def test_blocked_oversize_evidence_is_cut_and_attached_in_full() -> None:
    evidence = _huge_conflict()
    spec = render(samples.note(samples.blocked(evidence=evidence)))
    [embed] = spec.embeds
    _assert_within_limits(embed)
    assert embed["footer"] == {"text": "Full evidence in the attached file evidence-feat-a.txt"}
    assert spec.content.endswith("\nFull evidence attached.")
    [file] = spec.files
    assert file.filename == "evidence-feat-a.txt"
    text = file.data.decode()
    for path, hunk in evidence["hunks"].items():  # type: ignore[attr-defined]
        assert f"== hunks: {path} ==\n{hunk}" in text
    assert "next_action: Merge main into feat/feat-a" in text
    # The first hunk is shown (cut to a field), the most important things stay in the description.
    fields = embed["fields"]
    assert fields[0]["name"] == "Conflicted paths (30)"
    assert fields[1]["name"] == "pkg/module_00.py" and fields[1]["value"].endswith("… (truncated)\n```")
    assert "**Next:**" in embed["description"]


def test_blocked_title_and_long_path_names_are_clipped() -> None:
    long_path = "d/" * 200 + "file.py"
    spec = render(
        samples.note(
            samples.blocked(
                evidence={"conflicted_paths": [long_path], "hunks": {long_path: "x"}, "main": samples.MAIN}
            )
        )
    )
    [embed] = spec.embeds
    _assert_within_limits(embed)
    assert spec.files, "a clipped field name loses information, so the full evidence is attached"


def test_hunk_with_code_fence_cannot_break_out_of_its_block() -> None:
    evidence = {
        "conflicted_paths": ["x.md"],
        "hunks": {"x.md": "```python\nprint(1)\n```"},
        "main": samples.MAIN,
    }
    value = render(samples.note(samples.blocked(evidence=evidence))).embeds[0]["fields"][1]["value"]
    assert value.startswith("```diff\n") and value.endswith("\n```")
    assert value.count("```") == 2


def test_verify_failed_shows_command_status_and_the_end_of_the_log() -> None:
    log = "\n".join(f"line {i}" for i in range(400)) + "\nFAILED test_x"
    evidence = {"command": ["pytest", "-q"], "command_line": "pytest -q", "exit_status": 1, "log_tail": log}
    spec = render(samples.note(samples.blocked("verify_failed", evidence)))
    [embed] = spec.embeds
    _assert_within_limits(embed)
    assert embed["title"] == "Blocked: feat-a — verify failed (exit 1)"
    by_name = {f["name"]: f["value"] for f in embed["fields"]}
    assert by_name["Command"] == "`pytest -q`"
    assert by_name["Exit status"] == "1"
    assert by_name["Log tail"].startswith("```\n… (truncated)\n")
    assert by_name["Log tail"].endswith("FAILED test_x\n```")
    assert spec.files and "FAILED test_x" in spec.files[0].data.decode()


@pytest.mark.parametrize("reason", ["push_rejected", "branch_moved", "not_reachable", "git_error"])
def test_git_reasons_show_command_and_stderr(reason: str) -> None:
    evidence = {"command": ["git", "push", "origin"], "stderr": "! [rejected] main -> main (fetch first)"}
    spec = render(samples.note(samples.blocked(reason, evidence)))
    fields = {f["name"]: f["value"] for f in spec.embeds[0]["fields"]}
    assert fields == {
        "Command": "`git push origin`",
        "Git said": "```\n! [rejected] main -> main (fetch first)\n```",
    }
    assert spec.resume_slug == "feat-a" and not spec.files


def test_unknown_evidence_keys_are_listed_not_lost() -> None:
    spec = render(
        samples.note(samples.blocked("branch_moved", {"tip": samples.SHA2, "expected": samples.SHA}))
    )
    fields = {f["name"]: f["value"] for f in spec.embeds[0]["fields"]}
    assert fields["Details"] == f"tip: `{samples.SHA2}`\nexpected: `{samples.SHA}`"


def test_shadow_batch_lists_blocks_first() -> None:
    assert render(samples.note(samples.shadow())).content == (
        "🔮 **Shadow predictions**: 1 would integrate, 1 would block\n"
        "⛔ `bad-one` `fedcba9876` would block: `a.py`\n"
        "✅ `ok-one` `0123456789` would integrate"
    )


def test_shadow_batch_too_long_for_one_message_attaches_the_rest() -> None:
    items = [
        {"slug": f"slug-{i:03d}", "sha": samples.SHA, "prediction": "would_integrate", "tree": samples.SHA2,
         "conflicted_paths": []}
        for i in range(200)
    ]  # fmt: skip
    spec = render(samples.note(samples.shadow(items, nid=7)))
    assert len(spec.content) <= 2000
    [file] = spec.files
    assert file.filename == "shadow-predictions-7.txt"
    last = spec.content.splitlines()[-1]
    shown = len(spec.content.splitlines()) - 2
    assert last == f"…and {200 - shown} more in shadow-predictions-7.txt"
    assert len(file.data.decode().splitlines()) == 200


def test_mode_changed_manual_and_automatic() -> None:
    assert render(samples.note(samples.mode_changed())).content == (
        f"🔀 Mode is now **cutover** (was shadow)\nBy alice\nReason: parity 98%\n<t:{samples.AT_UNIX}:f>"
    )
    assert render(samples.note(samples.mode_changed(automatic=True))).content == (
        "⚠️ **Automatic rollback**: mode is now **shadow** (was cutover)\n"
        f"Reason: no progress for 1 h\n<t:{samples.AT_UNIX}:f>"
    )


def test_stall_alarm() -> None:
    assert render(samples.note(samples.stall())).content == (
        f"⏰ **Queue stalled** for 1 h 2 min\n3 candidates queued; stuck on **feat-a**\n"
        f"No progress since <t:{samples.AT_UNIX}:R>"
    )
    assert "nothing in progress" in render(samples.note(samples.stall(slug=None))).content


def test_paused_and_unpaused() -> None:
    assert render(samples.note(samples.paused())).content == (
        "⏸️ **Integration paused** by alice\nReason: release freeze\nQueued candidates wait; nothing is lost."
    )
    assert "No reason given" in render(samples.note(samples.paused(reason=None))).content
    assert render(samples.note(samples.unpaused())).content == "▶️ **Integration unpaused** by bob"


def test_user_text_is_shown_literally_not_as_markdown() -> None:
    content = render(samples.note(samples.paused(reason="**all** _hands_ `now`"))).content
    assert "Reason: \\*\\*all\\*\\* \\_hands\\_ \\`now\\`" in content


def test_every_line_reads_on_a_phone() -> None:
    for n in (samples.ready(), samples.superseded(), samples.completed(), samples.stall(), samples.paused()):
        assert all(len(line) <= 72 for line in render(samples.note(n)).content.splitlines()), n["kind"]


@pytest.mark.parametrize(
    ("notification", "message"),
    [
        (
            samples.notification("candidate_ready", {"slug": "a", "branch": "b", "sha": samples.SHA}),
            "'position'",
        ),
        (samples.ready(position=True), "'position' has type bool"),
        (samples.notification("integration_blocked", []), "payload must be an object"),  # type: ignore[arg-type]
        (samples.shadow([{"slug": "x"}]), "missing field 'items.0.sha'"),
    ],
)
def test_malformed_notifications_are_refused_with_the_field_named(
    notification: dict[str, object], message: str
) -> None:
    with pytest.raises(NotificationError, match=message):
        render(samples.note(notification))


def test_unknown_kind_is_still_delivered() -> None:
    content = render(samples.note(samples.notification("fault", {"error": "disk full"}))).content
    assert content == 'ℹ️ **fault**\n```json\n{"error": "disk full"}\n```'


@given(st.text(), st.integers(min_value=40, max_value=1024), st.booleans())
def test_code_block_never_exceeds_its_limit(text: str, limit: int, keep_tail: bool) -> None:
    block, cut = code_block(text, limit, keep_tail=keep_tail)
    assert len(block) <= limit
    assert block.startswith("```") and block.endswith("```")
    assert block.count("```") == 2
    if not cut:
        assert block == "```\n" + (text.replace("```", "``\u200b`").rstrip("\n") or " ") + "\n```"
    else:
        assert "… (truncated)" in block


def test_small_helpers() -> None:
    assert code("a`b") == "`aˋb`"
    assert [human_duration(s) for s in (0.25, 5, 65, 3600, 200_000)] == [
        "250 ms",
        "5.0 s",
        "1 min 5 s",
        "1 h",
        "2 d 7 h",
    ]
