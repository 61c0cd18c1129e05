"""Outbox → channel through the shipped bot: every kind, in order, once; outages and bad rows.

The notifications are real outbox rows in the real SQLite store; the bot's own delivery task
(started in ``setup_hook``) posts them through the adapter to the recorder.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import discord
import pytest
import samples
from botkit import POST, OfflineBot, nonces, posts
from conftest import BotEnv, MakeHarness, async_wait_for
from harness import CHANNEL_ID, Call

from integrator import notifications, outbox
from integrator.events import iso, utcnow
from integrator.models import Backlog
from teleclaude.adapters.discord_render import render

EVERY_KIND = [
    *samples.every_kind(),
    # A kind this version does not know (a newer writer's): still delivered, as its JSON.
    samples.notification("fault", {"kind": "git", "message": "fetch timed out"}),
]


async def write(env: BotEnv, notes: list[dict[str, Any]]) -> list[int]:
    """Commit outbox rows the way an integrator step does (one transaction, then a wake-up)."""
    now = iso(utcnow())

    def add(conn: Any) -> list[int]:
        return [_add(conn, n, now) for n in notes]

    return await env.integ.store.write(add, notify=True)


def _add(conn: Any, n: dict[str, Any], now: str) -> int:
    """Through the typed path when the sample fits its kind's model; else as a row another version
    (a newer kind, an older shape) could have left in the outbox."""
    try:
        payload = notifications.parse(n["kind"], n["payload"])
    except notifications.InvalidPayload:
        payload = None
    if payload is not None:
        return outbox.add(conn, payload, now=now)
    cur = conn.execute(
        "INSERT INTO outbox (kind, payload, created_at) VALUES (?, ?, ?)",
        (n["kind"], json.dumps(n["payload"]), now),
    )
    return int(cur.lastrowid)


async def backlog(env: BotEnv) -> Backlog:
    found = await env.integ.store.read(outbox.backlog)
    return next(b for b in found if b.consumer == "discord")


async def drained(env: BotEnv) -> bool:
    return (await backlog(env)).waiting == 0


def track_accepted(env: BotEnv, fail: Any = None) -> list[Call]:
    """Answer channel posts like Discord, or raise what ``fail(call)`` returns.

    Returns the posts Discord accepted, in order (a failed attempt is recorded as a call too).
    """
    accepted: list[Call] = []
    echo = env.recorder.responses[POST]

    def respond(call: Call) -> Any:
        error = fail(call) if fail else None
        if error is not None:
            raise error
        accepted.append(call)
        return echo(call)

    env.recorder.on(POST, respond)
    return accepted


def http_error(status: int, code: int, message: str) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason=message)
    if status >= 500:
        return discord.DiscordServerError(response, {"code": code, "message": message})  # type: ignore[arg-type]
    return discord.HTTPException(response, {"code": code, "message": message})  # type: ignore[arg-type]


async def test_every_kind_reaches_the_channel_in_order_once(bot_env: BotEnv) -> None:
    ids = await write(bot_env, EVERY_KIND)
    await async_wait_for(lambda: len(posts(bot_env.recorder)) >= len(ids), timeout=15)
    sent = posts(bot_env.recorder)
    assert [c.path for c in sent] == [f"/channels/{CHANNEL_ID}/messages"] * len(ids)
    assert nonces(sent) == [f"tc-ob-{i}" for i in ids], "in outbox order, one message per row"
    expected = [render(samples.note({**n, "id": i})).content for n, i in zip(EVERY_KIND, ids, strict=True)]
    assert [c.json["content"] for c in sent] == expected
    assert all(c.json["enforce_nonce"] is True and c.json["allowed_mentions"] == {"parse": []} for c in sent)
    blocked = sent[4]
    assert [b["custom_id"] for row in blocked.json["components"] for b in row["components"]] == [
        "resume:feat-a"
    ]
    assert blocked.json["embeds"][0]["title"] == "Blocked: feat-a — merge conflict in 2 files"
    await async_wait_for(lambda: drained(bot_env), timeout=5)


async def test_an_unrenderable_row_is_announced_and_does_not_wedge_the_queue(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    broken = samples.notification("candidate_ready", {"slug": "feat-x", "branch": "b", "sha": samples.SHA})
    ids = await write(bot_env, [broken, samples.paused()])
    await async_wait_for(lambda: len(posts(bot_env.recorder)) >= 2, timeout=15)
    first, second = posts(bot_env.recorder)
    assert first.json["nonce"] == f"tc-ob-{ids[0]}"
    assert first.json["content"] == (
        f"⚠️ Notification #{ids[0]} (candidate\\_ready) could not be shown: "
        "candidate\\_ready: missing field 'position'\n"
        "Its full record is in the integrator's outbox (`integrator status`)."
    )
    assert second.json["nonce"] == f"tc-ob-{ids[1]}" and "Integration paused" in second.json["content"]
    assert (
        f"event=notification_undeliverable consumer=discord id={ids[0]} kind=candidate_ready" in caplog.text
    )


async def test_a_message_discord_rejects_as_bad_request_is_replaced_not_retried_forever(
    bot_env: BotEnv,
) -> None:
    rejected = {"done": False}

    def fail(call: Call) -> Exception | None:
        if "Integration paused" in call.json["content"] and not rejected["done"]:
            rejected["done"] = True
            return http_error(400, 50035, "Invalid Form Body")
        return None

    accepted = track_accepted(bot_env, fail)
    ids = await write(bot_env, [samples.paused(), samples.unpaused()])
    await async_wait_for(lambda: len(accepted) >= 2, timeout=15)
    replaced, unpaused = accepted
    assert nonces([replaced, unpaused]) == [f"tc-ob-{ids[0]}", f"tc-ob-{ids[1]}"]
    assert replaced.json["content"].startswith(
        f"⚠️ Notification #{ids[0]} (paused) could not be shown: Discord refused it (400 50035: Invalid Form Body)"
    )
    assert unpaused.json["content"].startswith("▶️ **Integration unpaused**")


async def test_an_outage_holds_the_cursor_and_recovery_delivers_each_once_in_order(bot_env: BotEnv) -> None:
    outage = {"down": True}
    accepted = track_accepted(
        bot_env, lambda call: http_error(503, 0, "upstream down") if outage["down"] else None
    )
    ids = await write(bot_env, [samples.ready(nid=0), samples.completed(nid=0), samples.paused(nid=0)])

    await async_wait_for(lambda: len(posts(bot_env.recorder)) >= 2, timeout=15)  # retried, with backoff
    box = await backlog(bot_env)
    assert box.waiting == 3 and box.attempts >= 2, box
    assert box.last_error and box.last_error.startswith("DiscordServerError: 503")
    assert accepted == []
    assert set(nonces(posts(bot_env.recorder))) == {f"tc-ob-{ids[0]}"}, (
        "the head is retried, nothing skips it"
    )

    outage["down"] = False
    await async_wait_for(lambda: len(accepted) >= 3, timeout=15)
    await async_wait_for(lambda: drained(bot_env), timeout=5)
    assert nonces(accepted) == [f"tc-ob-{i}" for i in ids], "each exactly once, in order"


async def test_a_restart_never_reposts_and_a_resend_after_a_crash_reuses_the_nonce(
    bot_env: BotEnv, make: MakeHarness
) -> None:
    [first] = await write(bot_env, [samples.paused()])
    await async_wait_for(lambda: len(posts(bot_env.recorder)) == 1, timeout=15)

    # Discord accepts the next post but the answer never arrives; the bot is stopped meanwhile.
    hang = asyncio.Event()

    async def hanging(call: Call) -> Any:
        await hang.wait()

    bot_env.recorder.on(POST, hanging)
    bot_env.client.flush_timeout_s = 0.2
    [second] = await write(bot_env, [samples.unpaused()])
    await async_wait_for(lambda: len(posts(bot_env.recorder)) == 2, timeout=15)
    await bot_env.harness.close()
    assert (await backlog(bot_env)).waiting == 1, "not acked: it was never confirmed"

    again = await make(OfflineBot, integ=bot_env.integ, sync_commands=False)
    await async_wait_for(lambda: len(posts(again.recorder)) == 1, timeout=15)
    [resent] = posts(again.recorder)
    sent_before = posts(bot_env.recorder)
    assert nonces(sent_before) == [f"tc-ob-{first}", f"tc-ob-{second}"]
    # Same row, same nonce and enforce_nonce: Discord returns the first message instead of a second one.
    assert resent.json == sent_before[1].json and resent.json["enforce_nonce"] is True
    await async_wait_for(lambda: drained(bot_env), timeout=5)
    await again.close()
    hang.set()


async def test_a_reconnect_retries_a_long_backed_off_head_at_once(bot_env: BotEnv) -> None:
    """After a long outage the head waits in a backoff of minutes; the gateway coming back ends the wait."""
    accepted = track_accepted(bot_env)
    far = utcnow().timestamp() + 3600

    def long_backoff(conn: Any) -> None:
        outbox.register(conn, "discord")
        conn.execute(
            "UPDATE outbox_cursors SET attempts = 9, next_attempt_at = ? WHERE consumer = 'discord'", (far,)
        )

    await bot_env.integ.store.write(long_backoff)
    ids = await write(bot_env, [samples.ready(nid=0)])
    now = utcnow().timestamp()
    assert (
        await bot_env.integ.store.write(lambda c: outbox.pending(c, "discord", now=now)) == []
    )  # backing off
    bot_env.client.dispatch("resumed")
    await async_wait_for(lambda: len(accepted) == 1, timeout=5)
    assert nonces(accepted) == [f"tc-ob-{ids[0]}"]
