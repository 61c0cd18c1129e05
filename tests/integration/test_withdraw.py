"""``integrator withdraw``: off the queue for good, audited and notified; one in flight stops cleanly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conftest import INTEGRATOR, cli, db_rows, emit_ready, push_feature, readiness_events, run_once

from integrator.config import Config
from integrator.notices import notification_line
from integrator.outbox import Notification
from integrator.sandbox import Sandbox
from integrator.service import Integrator
from teleclaude.adapters.discord_render import render


def _statuses(cfg: Config) -> dict[str, tuple[str, str]]:
    found = db_rows(
        cfg,
        "SELECT c.slug, c.status AS cs, q.status AS qs FROM candidates c LEFT JOIN queue q ON q.candidate_id = c.id",
    )
    return {r["slug"]: (r["cs"], r["qs"]) for r in found}


def _withdrawn_events(cfg: Config) -> list[dict[str, Any]]:
    found = db_rows(cfg, "SELECT payload FROM events WHERE type = 'candidate_withdrawn' ORDER BY seq")
    return [json.loads(r["payload"]) for r in found]


async def test_a_queued_candidate_withdrawn_never_lands(sandbox: Sandbox, config: Config) -> None:
    keep = push_feature(sandbox, "keep", {"keep.txt": "k\n"})
    drop = push_feature(sandbox, "drop", {"drop.txt": "d\n"})
    await emit_ready(config, drop, keep)

    result = cli(config, "withdraw", "drop", "--reason", "superseded by a different approach")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"withdrew drop {drop.sha[:10]} (was queued)")
    ran = cli(config, "run", "--once")
    assert ran.returncode == 0, ran.stderr
    [row] = db_rows(config, "SELECT * FROM outbox WHERE kind = 'candidate_withdrawn'")
    note = Notification.read(row["id"], row["kind"], json.loads(row["payload"]), row["created_at"])
    assert note.problem is None, "the row fits its kind's model"
    assert notification_line(note).startswith("[withdrawn] drop ")
    discord = render(note)
    assert (
        discord.content.startswith("🚫 **drop** withdrawn by ") and "Reason: superseded by" in discord.content
    )

    assert _statuses(config) == {"keep": ("integrated", "integrated"), "drop": ("superseded", "superseded")}
    assert not any(drop.sha in line for line in sandbox.main_log("%H %P"))
    [event] = _withdrawn_events(config)
    assert (event["slug"], event["was"], event["reason"]) == (
        "drop",
        "queued",
        "superseded by a different approach",
    )
    [transition] = db_rows(
        config, "SELECT from_status, to_status, reason FROM transitions WHERE to_status = 'superseded'"
    )
    assert transition["from_status"] == "queued" and transition["reason"].startswith("withdrawn by ")
    # A repeated finalize_ready of the same sha does not bring it back.
    async with await Integrator.open(config) as integ:
        await integ.emit(readiness_events(drop.slug, drop.branch, drop.sha), wait=True)
    assert _statuses(config)["drop"] == ("superseded", "superseded")


async def test_waiting_and_blocked_candidates_are_withdrawn_and_bad_input_changes_nothing(
    sandbox: Sandbox, config: Config
) -> None:
    waiting = push_feature(sandbox, "waiting", {"w.txt": "w\n"})
    async with await Integrator.open(config) as integ:
        # Only finalize_ready: waiting for review and push.
        await integ.emit(readiness_events(waiting.slug, waiting.branch, waiting.sha)[2:], wait=True)
    clash = push_feature(sandbox, "clash", {"README.md": "mine\n"})
    legacy = sandbox.worker("legacy")
    legacy.start("main")
    legacy.commit({"README.md": "theirs\n"}, "conflicting")
    legacy.push("main")
    await emit_ready(config, clash)
    await run_once(config)
    assert _statuses(config)["clash"] == ("blocked", "blocked")

    before = db_rows(config, "SELECT COUNT(*) AS n FROM events")[0]["n"]
    for args, status, said in (
        (["withdraw", "clash", "--reason", "   "], 2, "reason: a withdrawal needs a reason"),
        (["withdraw", "Not A Slug", "--reason", "x"], 2, "slug:"),
        (["withdraw", "nobody", "--reason", "x"], 1, "nobody has no candidate"),
    ):
        bad = cli(config, *args)
        assert bad.returncode == status, (args, bad.stdout, bad.stderr)
        assert (
            said in bad.stderr and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        )
    assert db_rows(config, "SELECT COUNT(*) AS n FROM events")[0]["n"] == before

    assert cli(config, "withdraw", "waiting", "--reason", "abandoned").returncode == 0
    assert cli(config, "withdraw", "clash", "--reason", "rewritten elsewhere").returncode == 0
    assert _statuses(config)["waiting"] == ("superseded", None)
    assert _statuses(config)["clash"] == ("superseded", "superseded")
    assert [(e["slug"], e["was"]) for e in _withdrawn_events(config)] == [
        ("waiting", "waiting"),
        ("clash", "blocked"),
    ]
    again = cli(config, "withdraw", "clash", "--reason", "twice")
    assert again.returncode == 1 and "nothing to withdraw" in again.stderr
    assert cli(config, "resume", "clash").returncode == 1  # a withdrawn candidate cannot be resumed


async def _withdraw_at(phase: str, config: Config, answers: list[tuple[int, str]]) -> Any:
    """A phase probe that runs the real CLI's withdraw (another process) when the workflow reaches ``phase``."""

    async def at(reached: str) -> None:
        if reached != phase:
            return
        proc = await asyncio.create_subprocess_exec(
            INTEGRATOR, "--config", str(config.config_path), "withdraw", "inflight", "--reason", "stop it",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        answers.append((proc.returncode or 0, (out + err).decode()))

    return at


async def test_a_candidate_in_flight_stops_before_its_push(sandbox: Sandbox, config: Config) -> None:
    feature = push_feature(sandbox, "inflight", {"f.txt": "f\n"})
    await emit_ready(config, feature)
    main = sandbox.main_sha()
    answers: list[tuple[int, str]] = []

    await run_once(config, probe=await _withdraw_at("verify", config, answers))

    assert answers and answers[0][0] == 0 and "stops before its push" in answers[0][1], answers
    assert sandbox.main_sha() == main  # nothing pushed, not even half
    assert _statuses(config)["inflight"] == ("superseded", "superseded")
    [event] = _withdrawn_events(config)
    assert event["was"] == "in_progress"
    assert db_rows(config, "SELECT COUNT(*) AS n FROM checkpoints")[0]["n"] == 0
    assert (
        db_rows(config, "SELECT COUNT(*) AS n FROM settings WHERE key LIKE 'withdraw_request:%'")[0]["n"] == 0
    )
    [t] = db_rows(config, "SELECT from_status, fencing FROM transitions WHERE to_status = 'superseded'")
    assert t["from_status"] == "in_progress" and t["fencing"] is not None


async def test_once_the_push_is_under_way_the_withdrawal_is_refused_and_it_lands(
    sandbox: Sandbox, config: Config
) -> None:
    feature = push_feature(sandbox, "inflight", {"f.txt": "f\n"})
    await emit_ready(config, feature)
    answers: list[tuple[int, str]] = []

    await run_once(config, probe=await _withdraw_at("before_push", config, answers))

    assert answers and answers[0][0] == 1 and "too late to withdraw" in answers[0][1], answers
    assert _statuses(config)["inflight"] == ("integrated", "integrated")
    assert _withdrawn_events(config) == []
