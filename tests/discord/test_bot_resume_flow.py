"""The Resume button end to end: a real conflict, the real notification, clicks through the real bot."""

from __future__ import annotations

import json
from typing import Any

import scenarios
from botkit import CALLBACK, FOLLOWUP, OfflineBot, interact, posts, replies
from conftest import BotEnv, MakeHarness, async_wait_for
from harness import ADMIN_ROLE_ID, OTHER_ROLE_ID, USER_ID, Recorder, button_click_payload, member_payload

ADMIN = member_payload(USER_ID, role_ids=[ADMIN_ROLE_ID])
MEMBER = member_payload(USER_ID + 1, role_ids=[OTHER_ROLE_ID], name="bob")
DEFERRED = {"type": 5, "data": {"flags": 64}}


def posted_message(recorder: Recorder, text: str) -> dict[str, Any] | None:
    """The message Discord would hold for the first post containing ``text`` (as a click carries it)."""
    for message in recorder.messages.values():
        if text in json.dumps(message, ensure_ascii=False):
            return message
    return None


async def click(client: OfflineBot, recorder: Recorder, message: dict[str, Any], member: Any) -> list[Any]:
    recorder.clear()
    await interact(client, button_click_payload("resume:feat-b", message, member=member))
    return replies(recorder)


async def test_resume_button_applies_the_cores_rules_across_a_restart(
    bot_env: BotEnv, make: MakeHarness
) -> None:
    blocked = await scenarios.blocked(bot_env, "feat-b")
    message = await async_wait_for(lambda: posted_message(bot_env.recorder, "resume:feat-b"), timeout=15)
    assert message["content"] == "⛔ **feat-b** blocked: merge conflict in 1 file"
    [embed] = message["embeds"]
    assert embed["title"] == "Blocked: feat-b — merge conflict in 1 file"
    assert embed["fields"][0] == {
        "name": "Conflicted paths (1)",
        "value": "• `shared.txt` (added on both sides)",
        "inline": False,
    }

    # Not an admin: refused by the adapter before the core is asked.
    [refusal] = await click(bot_env.client, bot_env.recorder, message, MEMBER)
    assert refusal.key == CALLBACK and refusal.json["data"]["flags"] == 64
    assert refusal.json["data"]["content"].startswith(
        "Sorry, only members with the **integrator-admin** role"
    )

    # An admin, but nothing changed since the block: the core refuses, and says why.
    defer, answer = await click(bot_env.client, bot_env.recorder, message, ADMIN)
    assert (defer.json, answer.key) == (DEFERRED, FOLLOWUP)
    main_now = bot_env.sandbox.main_sha()
    assert answer.json["content"] == (
        f"Could not resume **feat-b**: feat-b stays blocked (merge\\_conflict): main is still {main_now[:10]} "
        "and the configuration is unchanged, so it would block again. Push a fix and emit finalize\\_ready instead."
    )
    assert [b.slug for b in await bot_env.integ.blocked()] == ["feat-b"]

    # Main moves; the bot restarts; the button on the old message still works and re-queues.
    moved = scenarios.move_main(bot_env.sandbox, {"unrelated.txt": "x\n"})
    await bot_env.harness.close()
    again = await make(OfflineBot, integ=bot_env.integ, sync_commands=False)
    defer, answer = await click(again.client, again.recorder, message, ADMIN)  # type: ignore[arg-type]
    assert (defer.json, answer.key) == (DEFERRED, FOLLOWUP)
    assert answer.json["content"] == (
        f"▶️ **feat-b** `{blocked.sha[:10]}` re-queued, next in queue\n"
        f"Why: main moved from {main_now[:10]} to {moved[:10]}"
    )
    [item] = await bot_env.integ.queued()
    assert (item.slug, item.sha, item.status) == ("feat-b", blocked.sha, "queued")
    assert await bot_env.integ.blocked() == []
    # The re-queue is announced in the channel, with who did it.
    notice = await async_wait_for(
        lambda: [p for p in posts(again.recorder) if "ready" in p.json["content"]], timeout=15
    )
    assert notice[0].json["content"] == (
        f"✅ **feat-b** ready — next in queue\n`{blocked.branch}` @ `{blocked.sha[:10]}`\n"
        f"Resumed by discord:alice#{USER_ID}"
    )
    # Clicked again: there is nothing left to resume.
    _, answer = await click(again.client, again.recorder, message, ADMIN)  # type: ignore[arg-type]
    assert answer.json["content"] == "Could not resume **feat-b**: feat-b has no blocked candidate to resume"
    await again.close()
