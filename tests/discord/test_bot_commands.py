"""/integrate through the real CommandTree, over a real sandbox repository and SQLite store.

Each test sends the gateway payload Discord would send and checks the exact request the bot sends
back, and what the core recorded.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Any

import pytest
import scenarios
from botkit import (
    CALLBACK,
    FOLLOWUP,
    SYNC_GUILD,
    OfflineBot,
    allow_sync,
    contains,
    interact,
    posts,
    replies,
    reply_text,
    use_recorder,
)
from conftest import BotEnv, push_feature, readiness_events
from harness import (
    ADMIN_ROLE_ID,
    APP_ID,
    GUILD_ID,
    OTHER_ROLE_ID,
    USER_ID,
    Recorder,
    autocomplete_payload,
    member_payload,
    slash_payload,
)

from integrator import settings
from integrator.authority.record import update_record
from integrator.authority.remote import read_remote_mode
from integrator.events import iso, utcnow
from integrator.service import Integrator

ADMIN = member_payload(USER_ID, role_ids=[ADMIN_ROLE_ID])
MEMBER = member_payload(USER_ID + 1, role_ids=[OTHER_ROLE_ID], name="bob")
BY_ADMIN = f"discord:alice#{USER_ID}"
EPHEMERAL = 64
SHA_RE = "[0-9a-f]{10}"
T_RE = r"<t:\d+:R>"


def answer(content: str) -> dict[str, Any]:
    """The exact callback body of an immediate ephemeral reply."""
    return {
        "type": 4,
        "data": {"content": content, "flags": EPHEMERAL, "allowed_mentions": {"parse": []}, "tts": False},
    }


def followup(content: str) -> dict[str, Any]:
    """The exact followup body after a deferred ephemeral reply."""
    return {"content": content, "flags": EPHEMERAL, "allowed_mentions": {"parse": []}, "tts": False}


DEFERRED = {"type": 5, "data": {"flags": EPHEMERAL}}


async def run(env: BotEnv, sub: str, options: dict[str, Any] | None = None, member: Any = ADMIN) -> list[Any]:
    env.recorder.clear()
    await interact(env.client, slash_payload("integrate", sub, options, member=member))
    return replies(env.recorder)


async def only_reply(
    env: BotEnv, sub: str, options: dict[str, Any] | None = None, member: Any = ADMIN
) -> Any:
    [reply] = await run(env, sub, options, member)
    assert reply.key == CALLBACK
    return reply.json


async def deferred_reply(env: BotEnv, sub: str, options: dict[str, Any] | None = None) -> str:
    defer, late = await run(env, sub, options)
    assert (defer.key, defer.json) == (CALLBACK, DEFERRED), "a slow command defers first"
    assert late.key == FOLLOWUP and late.path.startswith(f"/webhooks/{APP_ID}/itok")
    assert late.json["flags"] == EPHEMERAL and late.json["allowed_mentions"] == {"parse": []}
    return str(late.json["content"])


# -------------------------------------------------------------------------------------- registration
async def test_commands_are_synced_to_the_guild_as_one_guild_only_group(bot_env: BotEnv) -> None:
    cfg = bot_env.cfg.model_copy(
        update={"discord": bot_env.cfg.discord.model_copy(update={"guild_id": GUILD_ID})}
    )
    integ = Integrator(cfg, bot_env.integ.store)
    recorder = Recorder()
    allow_sync(recorder)
    client = use_recorder(OfflineBot(integ, sync_commands=True), recorder)
    try:
        await client.login("fake-token")
    finally:
        await client.close()
    [sync] = recorder.requests(SYNC_GUILD)
    assert sync.path == f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands"
    [group] = sync.json
    assert (group["name"], group["type"], group["contexts"], group["dm_permission"]) == (
        "integrate",
        1,
        [0],
        False,
    )
    subs = {o["name"]: o for o in group["options"]}
    assert sorted(subs) == sorted(
        [
            "status",
            "queue",
            "history",
            "shadow-report",
            "resume",
            "pause",
            "unpause",
            "cutover",
            "rollback",
            "launcher",
            "withdraw",
        ]
    )
    assert all(len(o["description"]) <= 100 for o in subs.values())
    [slug] = subs["resume"]["options"]
    assert (slug["name"], slug["type"], slug["required"], slug["autocomplete"]) == ("slug", 3, True, True)
    [limit] = subs["history"]["options"]
    assert (limit["type"], limit["min_value"], limit["max_value"], limit["required"]) == (4, 1, 25, False)
    [reason] = subs["pause"]["options"]
    assert (reason["required"], reason["min_length"], reason["max_length"]) == (True, 1, 500)
    assert recorder.errors == []


# ------------------------------------------------------------------------------------------ read only
async def test_status_of_a_fresh_repository(bot_env: BotEnv) -> None:
    assert await only_reply(bot_env, "status", member=MEMBER) == answer(
        "🟢 **cutover**: the integrator merges to main\n"
        "⚠️ No integrator holds the lease: nothing is being integrated\n"
        "📋 Queue: empty"
    )


async def test_status_shows_queue_blocked_waiting_and_the_last_outcomes(bot_env: BotEnv) -> None:
    a = await scenarios.ready(bot_env, "feat-a")
    await scenarios.drain(bot_env)
    b = await scenarios.blocked(bot_env, "feat-b")
    c = await scenarios.ready(bot_env, "feat-c")
    d = await scenarios.waiting(bot_env, "feat-d")
    body = await only_reply(bot_env, "status", member=MEMBER)
    lines = body["data"]["content"].split("\n")
    assert lines[:3] == [
        "🟢 **cutover**: the integrator merges to main",
        "⚠️ No integrator holds the lease: nothing is being integrated",
        "📋 Queue: 1, next **feat-c**",
    ]
    assert c.sha not in body["data"]["content"], "shas are shown short"
    i = lines.index("**Blocked (1)**, `/integrate resume` when fixed:")
    assert lines[i + 1] == f"⛔ **feat-b** `{b.sha[:10]}`: merge conflict (1 file)"
    i = lines.index("**Waiting (1)**:")
    assert re.fullmatch(rf"⏳ \*\*feat-d\*\* `{d.sha[:10]}`: .*approv.*", lines[i + 1]), lines[i + 1]
    i = lines.index("**Recent**:")
    assert lines[i + 1].startswith(f"⛔ **feat-b** `{b.sha[:10]}` blocked: merge conflict · <t:")
    assert lines[i + 2].startswith(f"🎉 **feat-a** `{a.sha[:10]}` integrated in ")
    assert len(body["data"]["content"]) <= 2000


async def test_status_shows_who_paused_and_a_stall(bot_env: BotEnv) -> None:
    await scenarios.ready(bot_env, "feat-a")
    await bot_env.integ.pause("release freeze", by=BY_ADMIN)
    content = (await only_reply(bot_env, "status", member=MEMBER))["data"]["content"]
    assert f"⏸️ **Paused** by discord:alice#{USER_ID}: release freeze" in content.split("\n")
    assert "Stalled" not in content, "a pause is not a stall"

    await bot_env.integ.unpause(by=BY_ADMIN)
    # An hour and more later, the candidate still has not moved: status says the queue stalled.
    later = utcnow() + timedelta(seconds=bot_env.cfg.stall_limit_s + 125)
    bot_env.integ.clock = lambda: later
    content = (await only_reply(bot_env, "status", member=MEMBER))["data"]["content"]
    assert "⏰ **Stalled** for 1 h 2 min with 1 candidate waiting" in content.split("\n"), content


async def test_queue_lists_candidates_in_integration_order(bot_env: BotEnv) -> None:
    assert await only_reply(bot_env, "queue", member=MEMBER) == answer("📋 The queue is empty.")
    a = await scenarios.ready(bot_env, "feat-a")
    b = await scenarios.ready(bot_env, "feat-b")
    content = (await only_reply(bot_env, "queue", member=MEMBER))["data"]["content"]
    assert re.fullmatch(
        rf"📋 \*\*Queue\*\*: 2 candidates waiting\n"
        rf"1\. \*\*feat-a\*\* `{a.sha[:10]}`, ready {T_RE}\n"
        rf"2\. \*\*feat-b\*\* `{b.sha[:10]}`, ready {T_RE}",
        content,
    ), content


async def test_history_newest_first_and_limited(bot_env: BotEnv) -> None:
    assert await only_reply(bot_env, "history", member=MEMBER) == answer("📜 No outcomes yet.")
    a = await scenarios.ready(bot_env, "feat-a")
    await scenarios.drain(bot_env)
    b = await scenarios.blocked(bot_env, "feat-b")
    content = (await only_reply(bot_env, "history", member=MEMBER))["data"]["content"]
    assert re.fullmatch(
        rf"📜 \*\*Last 2 outcomes\*\*\n"
        rf"⛔ \*\*feat-b\*\* `{b.sha[:10]}` blocked: merge conflict · {T_RE}\n"
        rf"🎉 \*\*feat-a\*\* `{a.sha[:10]}` integrated in [0-9.]+ (ms|s) · {T_RE}",
        content,
    ), content
    one = (await only_reply(bot_env, "history", {"limit": 1}, member=MEMBER))["data"]["content"]
    assert one.split("\n")[:2] == ["📜 **Last 1 outcome**", content.split("\n")[1]]
    assert len(one.split("\n")) == 2


async def test_shadow_report_before_any_prediction(bot_env: BotEnv) -> None:
    assert await only_reply(bot_env, "shadow-report", member=MEMBER) == answer(
        "🔮 **Shadow parity**: 0 of 0 decided agree (0.0%)\n"
        "❌ Cutover gate **not passed**:\n"
        "• only 0 decided candidates; the gate needs at least 20\n"
        "Predicted 0 · undecided 0 · stuck 0 · errors 0"
    )


async def test_autocomplete_offers_live_slugs_by_prefix(bot_env: BotEnv) -> None:
    await scenarios.ready(bot_env, "feat-a")
    await scenarios.waiting(bot_env, "feat-b")
    await scenarios.ready(bot_env, "other")

    async def choices(value: str) -> list[str]:
        bot_env.recorder.clear()
        await interact(
            bot_env.client, autocomplete_payload("integrate", "resume", "slug", value, member=MEMBER)
        )
        [call] = bot_env.recorder.requests(CALLBACK)
        assert call.json["type"] == 8
        return [c["value"] for c in call.json["data"]["choices"]]

    assert await choices("feat") == ["feat-a", "feat-b"]
    assert await choices("FEAT-B ") == ["feat-b"], "what a phone keyboard types still matches"
    assert await choices("") == ["feat-a", "feat-b", "other"]
    assert await choices("%") == [], "LIKE wildcards are taken literally"


# ------------------------------------------------------------------------------------------- steering
async def test_pause_and_unpause_record_who_and_announce_it(bot_env: BotEnv) -> None:
    assert await only_reply(bot_env, "pause", {"reason": "release freeze"}) == answer(
        "⏸️ **Paused.** The candidate in flight finishes; the queue then waits.\n"
        "Reason: release freeze\nUndo with `/integrate unpause`."
    )
    status = await bot_env.integ.status()
    assert status.paused and status.pause and status.pause.by == BY_ADMIN
    # The same step wrote a notification; the bot's delivery posts it to the channel.
    notice = await wait_for_post(bot_env, "Integration paused")
    assert notice.json["content"].startswith(f"⏸️ **Integration paused** by discord:alice#{USER_ID}\n")

    assert await only_reply(bot_env, "unpause") == answer(
        "▶️ **Unpaused.** The integrator takes candidates again."
    )
    assert not (await bot_env.integ.status()).paused
    await wait_for_post(bot_env, "Integration unpaused")
    assert await only_reply(bot_env, "unpause") == answer("▶️ Integration was not paused; nothing changed.")


async def test_a_blank_pause_reason_is_refused_by_the_core(bot_env: BotEnv) -> None:
    assert await only_reply(bot_env, "pause", {"reason": "   "}) == answer(
        "🚫 `/integrate pause`: reason: a pause needs a reason"
    )
    assert not (await bot_env.integ.status()).paused


async def test_resume_of_a_slug_with_nothing_blocked_says_so(bot_env: BotEnv) -> None:
    text = await deferred_reply(bot_env, "resume", {"slug": "feat-zz"})
    assert text == "Could not resume **feat-zz**: feat-zz has no blocked candidate to resume"


async def test_resume_by_slash_command_requeues_once_main_moved(bot_env: BotEnv) -> None:
    b = await scenarios.blocked(bot_env, "feat-b")
    text = await deferred_reply(bot_env, "resume", {"slug": "feat-b"})
    assert text.startswith(
        "Could not resume **feat-b**: feat-b stays blocked (merge\\_conflict): main is still "
    )
    scenarios.move_main(bot_env.sandbox, {"unrelated.txt": "x\n"})
    text = await deferred_reply(bot_env, "resume", {"slug": "feat-b"})
    assert re.fullmatch(
        rf"▶️ \*\*feat-b\*\* `{b.sha[:10]}` re-queued, next in queue\nWhy: main moved from {SHA_RE} to {SHA_RE}",
        text,
    ), text
    [item] = await bot_env.integ.queued()
    assert (item.slug, item.sha, item.status) == ("feat-b", b.sha, "queued")


async def test_withdraw_by_an_admin_and_by_the_worker_who_emitted_it(bot_env: BotEnv) -> None:
    a = await scenarios.ready(bot_env, "feat-a")
    reply = await only_reply(bot_env, "withdraw", {"slug": "feat-a", "reason": "wrong approach"})
    assert reply == answer(f"🚫 **feat-a** `{a.sha[:10]}` withdrawn (was queued)\nReason: wrong approach")
    assert await bot_env.integ.queued() == []

    # bob announced feat-b himself (the bot's identity for him is its worker name): he may withdraw it.
    bob = f"discord:bob#{USER_ID + 1}"
    b = push_feature(bot_env.sandbox, "feat-b", {"b.txt": "b\n"})
    await bot_env.integ.emit(readiness_events("feat-b", b.branch, b.sha, worker=bob), wait=True)
    c = await scenarios.ready(bot_env, "feat-c")  # announced by another worker
    refused = await only_reply(bot_env, "withdraw", {"slug": "feat-c", "reason": "not mine"}, member=MEMBER)
    assert (
        "only members with the **integrator-admin** role can use `/integrate withdraw`"
        in refused["data"]["content"]
    )
    mine = await only_reply(
        bot_env, "withdraw", {"slug": "feat-b", "reason": "mine, dropping it"}, member=MEMBER
    )
    assert mine == answer(f"🚫 **feat-b** `{b.sha[:10]}` withdrawn (was queued)\nReason: mine, dropping it")
    assert [i.slug for i in await bot_env.integ.queued()] == ["feat-c"] and c.sha
    # Both withdrawals are in the journal, newest first, with who withdrew and why.
    withdrawn = [e.payload for e in await bot_env.integ.events(50) if e.type == "candidate_withdrawn"]
    assert [(p["slug"], p["reason"]) for p in withdrawn] == [
        ("feat-b", "mine, dropping it"),
        ("feat-a", "wrong approach"),
    ]


def _hooks_verified(env: BotEnv) -> None:
    """What `integrator hooks install` + `authority verify` leave behind (their own tests run them)."""
    now = iso(utcnow())
    update_record(
        env.cfg,
        {"bare": str(env.sandbox.remote), "installed_at": now, "verify_result": "pass", "verified_at": now},
    )


@pytest.mark.parametrize("bot_overrides", [{"mode": "shadow", "gate": {"min_decided": 0}}])
async def test_cutover_then_rollback_switch_store_and_remote(bot_env: BotEnv) -> None:
    text = await deferred_reply(bot_env, "cutover")
    assert text == (
        "🚫 `/integrate cutover`: cutover refused:\n"
        "- the hooks are not installed: run `integrator hooks install --remote <bare repository>`"
    )
    _hooks_verified(bot_env)
    text = await deferred_reply(bot_env, "cutover", {"reason": "parity is fine"})
    assert text == (
        "🟢 Mode is now **cutover**: only the integrator pushes main.\n"
        "Reason: parity is fine\nParity 0.0% over 0 candidates"
    )
    assert (await bot_env.integ.status()).mode_by == BY_ADMIN
    assert read_remote_mode(bot_env.sandbox.remote) == "cutover"
    await wait_for_post(bot_env, "Mode is now **cutover**")

    text = await deferred_reply(bot_env, "rollback", {"reason": "flaky remote"})
    assert text == "🔮 Mode is now **shadow**: people may push main again.\nReason: flaky remote"
    assert read_remote_mode(bot_env.sandbox.remote) == "shadow"
    text = await deferred_reply(bot_env, "rollback", {"reason": "again"})
    assert text.startswith("🚫 `/integrate rollback`: already in shadow (since ")


async def test_cutover_is_refused_by_the_parity_gate(bot_env: BotEnv) -> None:
    await bot_env.integ.set_mode("shadow", by="test", reason="start in shadow")
    text = await deferred_reply(bot_env, "cutover")
    assert text.split("\n")[:2] == [
        "🚫 `/integrate cutover`: cutover refused:",
        "- parity gate: only 0 decided candidates; the gate needs at least 20",
    ]
    mode = await bot_env.integ.store.read(lambda c: settings.mode(c, "cutover"))
    assert mode["mode"] == "shadow"


async def test_launcher_is_posted_on_request_in_this_channel(bot_env: BotEnv) -> None:
    text = await deferred_reply(bot_env, "launcher")
    assert text == "🚀 Posted the session launcher (1 message). Older launchers keep working."
    [launcher] = posts(bot_env.recorder)
    assert launcher.json["content"] == "🚀 **Start a session**: tap an agent"
    assert [b["custom_id"] for row in launcher.json["components"] for b in row["components"]] == [
        "launch:claude"
    ]


# ------------------------------------------------------------------------------------------ refusals
ADMIN_COMMANDS = [
    ("resume", {"slug": "feat-a"}),
    ("pause", {"reason": "mine now"}),
    ("unpause", None),
    ("cutover", None),
    ("rollback", {"reason": "because"}),
    ("launcher", None),
]


async def test_admin_commands_refuse_other_members_politely(bot_env: BotEnv) -> None:
    await bot_env.integ.pause("held by an admin", by=BY_ADMIN)
    before = await bot_env.integ.status()
    for sub, options in ADMIN_COMMANDS:
        assert await only_reply(bot_env, sub, options, member=MEMBER) == answer(
            f"Sorry, only members with the **integrator-admin** role can use `/integrate {sub}`. "
            "Ask one of them, or use the read-only commands (status, queue, history, shadow-report)."
        ), sub
    after = await bot_env.integ.status()
    assert (after.mode, after.pause, after.queue) == (before.mode, before.pause, before.queue)
    assert not [p for p in posts(bot_env.recorder) if "launch:" in json.dumps(p.json)]


async def test_admin_commands_are_refused_in_a_dm(bot_env: BotEnv) -> None:
    bot_env.recorder.clear()
    await interact(bot_env.client, slash_payload("integrate", "pause", {"reason": "x"}, guild_id=None))
    [reply] = replies(bot_env.recorder)
    assert reply_text(reply).startswith("Sorry, only members with the **integrator-admin** role")
    assert not (await bot_env.integ.status()).paused


async def test_an_unexpected_failure_gets_a_generic_reply_and_a_log(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    await bot_env.integ.store.close()  # a real failure: the database connection is gone
    with caplog.at_level(logging.ERROR, logger="bot.app"):
        body = await only_reply(bot_env, "queue", member=MEMBER)
    assert body == answer(
        "Something went wrong running `/integrate queue`; it was logged. "
        "Try again in a moment, or run `integrator status` on the host."
    )
    assert "event=command_failed command=queue" in caplog.text
    assert "fake-token" not in caplog.text


async def wait_for_post(env: BotEnv, text: str) -> Any:
    from conftest import async_wait_for

    found = await async_wait_for(lambda: [c for c in posts(env.recorder) if contains(text)(c)], timeout=10)
    return found[0]


async def test_status_shows_the_verify_sandbox_in_force(bot_env: BotEnv) -> None:
    cfg = bot_env.integ.cfg
    bot_env.integ.cfg = cfg.model_copy(
        update={"verify_command": ["make", "test"], "verify_isolation": "none"}
    )
    lines = (await only_reply(bot_env, "status", member=MEMBER))["data"]["content"].split("\n")
    assert "⚠️ Verify sandbox: none (verify\\_isolation = none in the config); **verify refused**" in lines
    bot_env.integ.cfg = cfg.model_copy(update={"verify_command": ["make", "test"], "verify_network": False})
    lines = (await only_reply(bot_env, "status", member=MEMBER))["data"]["content"].split("\n")
    sandbox = [line for line in lines if "Verify sandbox" in line]
    expected = "🧱 Verify sandbox: namespaces (user+mount+pid namespaces, no network)"
    assert sandbox == [expected] or "namespaces unavailable" in sandbox[0]
