"""The Resume button, clicked through INTERACTION_CREATE on the message the adapter really sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import samples
from bots import AdapterClient
from conftest import MakeHarness
from harness import (
    ADMIN_ROLE_ID,
    APP_ID,
    OTHER_ROLE_ID,
    USER_ID,
    Harness,
    button_click_payload,
    button_row,
    member_payload,
    message_with_components,
    text_channel,
)

from integrator.errors import InvalidInput
from teleclaude.adapters.discord_adapter import DiscordAdapter, DiscordUser, actor

CALLBACK = "POST /interactions/{webhook_id}/{webhook_token}/callback"
FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"
ADMIN = member_payload(USER_ID, role_ids=[ADMIN_ROLE_ID])
NOT_ADMIN = member_payload(USER_ID + 1, role_ids=[OTHER_ROLE_ID], name="bob")


class ResumeRecorder:
    def __init__(
        self, reply: str = "Re-queued feat-a: main moved since the block.", error: Exception | None = None
    ):
        self.calls: list[tuple[str, int, tuple[str, ...]]] = []
        self.actors: list[str] = []
        self.reply = reply
        self.error = error

    async def __call__(self, slug: str, user: DiscordUser, roles: Sequence[str]) -> str:
        self.calls.append((slug, user.id, tuple(roles)))
        self.actors.append(actor(user))
        if self.error is not None:
            raise self.error
        return self.reply


async def _blocked_message(make: MakeHarness, handler: Any) -> tuple[Harness, dict[str, Any]]:
    h = await make(AdapterClient, adapter=DiscordAdapter(resume_handler=handler))
    adapter: DiscordAdapter = h.client.adapter  # type: ignore[attr-defined]
    sent = await adapter.send(text_channel(h.client), samples.note(samples.blocked()))
    h.recorder.clear()
    return h, h.recorder.messages[sent.id]


async def test_admin_click_calls_the_handler_and_replies_ephemerally(make: MakeHarness) -> None:
    handler = ResumeRecorder()
    h, message = await _blocked_message(make, handler)
    await h.dispatch_interaction(button_click_payload("resume:feat-a", message, member=ADMIN))
    assert handler.calls == [("feat-a", USER_ID, ("@everyone", "integrator-admin"))]
    assert handler.actors == [f"discord:alice#{USER_ID}"], "the core records who resumed"
    defer, followup = h.requests()
    assert (defer.key, defer.json) == (CALLBACK, {"type": 5, "data": {"flags": 64}})
    assert followup.key == FOLLOWUP and followup.path.startswith(f"/webhooks/{APP_ID}/itok")
    assert followup.json == {
        "content": "Re-queued feat-a: main moved since the block.",
        "flags": 64,
        "allowed_mentions": {"parse": []},
        "tts": False,
    }


async def test_non_admin_is_refused_politely_and_nothing_is_resumed(make: MakeHarness) -> None:
    handler = ResumeRecorder()
    h, message = await _blocked_message(make, handler)
    await h.dispatch_interaction(button_click_payload("resume:feat-a", message, member=NOT_ADMIN))
    assert handler.calls == []
    [reply] = h.requests()
    assert reply.key == CALLBACK
    assert reply.json == {
        "type": 4,
        "data": {
            "content": "Sorry, only members with the **integrator-admin** role can resume a blocked "
            "candidate. Ask one of them to resume **feat-a**.",
            "flags": 64,
            "allowed_mentions": {"parse": []},
            "tts": False,
        },
    }


async def test_click_in_a_dm_is_refused(make: MakeHarness) -> None:
    handler = ResumeRecorder()
    h, message = await _blocked_message(make, handler)
    await h.dispatch_interaction(button_click_payload("resume:feat-a", message, guild_id=None))
    assert handler.calls == []
    [reply] = h.requests()
    assert reply.json["data"]["flags"] == 64 and "integrator-admin" in reply.json["data"]["content"]


async def test_a_refusal_from_the_core_is_shown_to_the_admin(make: MakeHarness) -> None:
    handler = ResumeRecorder(error=InvalidInput("main has not moved and the verify config is unchanged"))
    h, message = await _blocked_message(make, handler)
    await h.dispatch_interaction(button_click_payload("resume:feat-a", message, member=ADMIN))
    followup = h.requests(FOLLOWUP)[0]
    assert followup.json["content"] == (
        "Could not resume **feat-a**: main has not moved and the verify config is unchanged"
    )


async def test_a_crashing_handler_gets_a_generic_reply_and_a_log(make: MakeHarness, caplog: Any) -> None:
    handler = ResumeRecorder(error=RuntimeError("database is locked"))
    h, message = await _blocked_message(make, handler)
    await h.dispatch_interaction(button_click_payload("resume:feat-a", message, member=ADMIN))
    assert (
        h.requests(FOLLOWUP)[0].json["content"]
        == "Could not resume **feat-a**: internal error (it was logged)."
    )
    assert "resume handler failed slug=feat-a" in caplog.text
    assert "fake-token" not in caplog.text


async def test_button_on_a_message_from_before_a_restart_still_works(make: MakeHarness) -> None:
    # A fresh process never sent this message; the DynamicItem parses the slug from the custom id.
    handler = ResumeRecorder()
    h = await make(AdapterClient, adapter=DiscordAdapter(resume_handler=handler))
    old = message_with_components([button_row(("resume:old-work", "Resume"))])
    await h.dispatch_interaction(button_click_payload("resume:old-work", old, member=ADMIN))
    assert [c[0] for c in handler.calls] == ["old-work"]


async def test_without_a_handler_the_admin_is_told_how_to_resume(make: MakeHarness) -> None:
    h, message = await _blocked_message(make, None)
    await h.dispatch_interaction(button_click_payload("resume:feat-a", message, member=ADMIN))
    [reply] = h.requests()
    assert (
        reply.json["data"]["content"]
        == "Resuming is not enabled in this bot. Run `integrator resume feat-a`."
    )


async def test_a_custom_admin_role_name_is_honoured(make: MakeHarness) -> None:
    handler = ResumeRecorder()
    adapter = DiscordAdapter(resume_handler=handler, admin_role="member")
    h = await make(AdapterClient, adapter=adapter)
    sent = await adapter.send(text_channel(h.client), samples.note(samples.blocked()))
    await h.dispatch_interaction(
        button_click_payload("resume:feat-a", h.recorder.messages[sent.id], member=NOT_ADMIN)
    )
    assert handler.calls == [("feat-a", USER_ID + 1, ("@everyone", "member"))]
