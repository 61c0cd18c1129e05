"""Notifications posted through a real client: the exact request Discord receives."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord
import pytest
import samples
from botkit import POST
from harness import CHANNEL_ID, Harness, components_of, text_channel

from integrator.notifications import IntegrationBlocked
from teleclaude.adapters.discord_adapter import DiscordAdapter
from teleclaude.adapters.discord_render import evidence_text, render

EVERY_KIND = samples.every_kind()


async def _send(harness: Harness, notification: dict[str, Any], adapter: DiscordAdapter | None = None) -> Any:
    adapter = adapter or DiscordAdapter()
    harness.recorder.clear()
    await adapter.send(text_channel(harness.client), samples.note(notification))
    [call] = harness.requests(POST)
    assert call.path == f"/channels/{CHANNEL_ID}/messages"
    return call


async def test_simple_notification_exact_body(harness: Harness) -> None:
    call = await _send(harness, samples.ready())
    assert call.json == {
        "content": "✅ **feat-a** ready — #2 in queue\n`feat/a` @ `0123456789`",
        "allowed_mentions": {"parse": []},
        "components": [],
        "nonce": "tc-ob-42",
        "enforce_nonce": True,
        "tts": False,
    }


@pytest.mark.parametrize("notification", EVERY_KIND, ids=lambda n: n["kind"])
async def test_every_kind_is_one_message_with_a_nonce_from_the_outbox_id(
    harness: Harness, notification: dict[str, Any]
) -> None:
    call = await _send(harness, {**notification, "id": 9_000_000_000_000_000_001})
    assert call.json["content"] == render(samples.note(notification)).content
    assert call.json["nonce"] == "tc-ob-9000000000000000001"
    assert len(call.json["nonce"]) <= 25
    assert call.json["enforce_nonce"] is True
    assert call.json["allowed_mentions"] == {"parse": []}, "notifications never ping anyone"


async def test_a_retried_delivery_reuses_the_nonce_so_discord_drops_the_duplicate(harness: Harness) -> None:
    adapter = DiscordAdapter()
    first = await _send(harness, samples.completed(nid=77), adapter)
    again = await _send(harness, samples.completed(nid=77), adapter)
    other = await _send(harness, samples.completed(nid=78), adapter)
    assert first.json == again.json
    assert first.json["nonce"] == "tc-ob-77" and other.json["nonce"] == "tc-ob-78"


async def test_blocked_is_an_embed_with_a_resume_button(harness: Harness) -> None:
    call = await _send(harness, samples.blocked())
    expected_embed = {**render(samples.note(samples.blocked())).embeds[0], "flags": 0}
    assert call.json["embeds"] == [expected_embed]
    assert call.json["content"] == "⛔ **feat-a** blocked: merge conflict in 2 files"
    assert components_of(call.json) == [
        [{"type": 2, "style": 1, "custom_id": "resume:feat-a", "label": "Resume", "disabled": False}]
    ]
    assert not call.is_multipart


async def test_oversize_evidence_goes_out_as_a_file_in_a_multipart_request(harness: Harness) -> None:
    names = [f"lib/part_{i}.py" for i in range(12)]
    evidence = {"conflicted_paths": names, "hunks": {n: "x\n" * 900 for n in names}, "main": samples.MAIN}
    notification = samples.blocked(evidence=evidence, nid=5)
    call = await _send(harness, notification)
    assert call.is_multipart
    assert call.json["attachments"] == [{"id": 0, "filename": "evidence-feat-a.txt"}]
    [file] = call.files
    assert file.filename == "evidence-feat-a.txt"
    payload = samples.note(notification).payload
    assert isinstance(payload, IntegrationBlocked)
    assert file.data == evidence_text(payload).encode()
    [embed] = call.json["embeds"]
    assert embed["footer"] == {"text": "Full evidence in the attached file evidence-feat-a.txt"}
    assert len(embed["fields"]) <= 25
    assert components_of(call.json)[0][0]["custom_id"] == "resume:feat-a"
    assert call.json["nonce"] == "tc-ob-5"


async def test_shadow_predictions_batch_is_one_message(harness: Harness) -> None:
    items = [
        {
            "slug": f"s-{i}",
            "sha": samples.SHA,
            "prediction": "would_block",
            "tree": None,
            "conflicted_paths": ["a"],
        }
        for i in range(8)
    ]
    call = await _send(harness, samples.shadow(items))
    assert call.json["content"].count("would block") == 9  # the heading and one line per item


async def test_discord_failure_propagates_so_the_outbox_retries(harness: Harness) -> None:
    response = SimpleNamespace(status=503, reason="Service Unavailable")
    harness.recorder.on(POST, discord.HTTPException(response, "unavailable"))
    with pytest.raises(discord.HTTPException):
        await DiscordAdapter().send(text_channel(harness.client), samples.note(samples.ready()))


async def test_a_slug_outside_the_template_gets_no_button(harness: Harness) -> None:
    call = await _send(harness, samples.blocked(slug="Not_A_Slug"))
    assert call.json["components"] == []
    assert call.json["embeds"][0]["title"].startswith("Blocked: Not_A_Slug")
