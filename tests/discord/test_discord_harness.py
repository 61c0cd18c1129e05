"""The harness itself: it must record what really goes out and refuse what it was not told about."""

from __future__ import annotations

import io
import re

import discord
import pytest
from discord import app_commands
from harness import (
    APP_ID,
    CHANNEL_ID,
    Harness,
    UnexpectedRoute,
    autocomplete_payload,
    slash_payload,
    text_channel,
    without_nonce,
)


async def test_login_uses_canned_identity_and_sets_application_id(harness: Harness) -> None:
    assert [c.key for c in harness.calls] == ["GET /users/@me", "GET /oauth2/applications/@me"]
    assert harness.client.user is not None and harness.client.user.bot
    assert harness.client.application_id == APP_ID


async def test_channel_send_is_recorded_with_concrete_path_and_body(harness: Harness) -> None:
    await text_channel(harness.client).send("hello", embed=discord.Embed(title="t"))
    [call] = harness.requests()
    assert (call.method, call.template, call.path) == (
        "POST",
        "/channels/{channel_id}/messages",
        f"/channels/{CHANNEL_ID}/messages",
    )
    assert without_nonce(call.json) == {
        "components": [],
        "content": "hello",
        "embeds": [{"flags": 0, "title": "t", "type": "rich"}],
        "tts": False,
    }


async def test_multipart_send_records_payload_json_and_file_bytes(harness: Harness) -> None:
    msg = await text_channel(harness.client).send("see file", file=discord.File(io.BytesIO(b"abc"), "x.txt"))
    [call] = harness.requests()
    assert call.is_multipart
    assert call.json["content"] == "see file"
    assert call.json["attachments"] == [{"id": 0, "filename": "x.txt"}]
    assert [(f.filename, f.data) for f in call.files] == [("x.txt", b"abc")]
    assert msg.attachments[0].filename == "x.txt"


async def test_unknown_route_fails_loudly(harness: Harness) -> None:
    with pytest.raises(
        UnexpectedRoute, match=re.escape("DELETE /channels/{channel_id}/messages/{message_id}")
    ):
        await text_channel(harness.client).get_partial_message(1).delete()
    assert harness.recorder.errors
    harness.recorder.errors.clear()  # seen and expected; the fixture would fail the test otherwise


class _Tree(discord.Client):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.tree = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        group = app_commands.Group(name="integrate", description="integrator")

        async def slugs(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=s, value=s) for s in ("alpha", "beta") if s.startswith(current)]

        @group.command(name="resume", description="resume a slug")
        @app_commands.autocomplete(slug=slugs)
        async def resume(interaction: discord.Interaction, slug: str) -> None:
            await interaction.response.send_message(f"resume {slug}", ephemeral=True)

        self.tree.add_command(group)


async def test_slash_subcommand_and_autocomplete_go_through_the_real_tree(make) -> None:  # type: ignore[no-untyped-def]
    h = await make(_Tree)
    await h.dispatch_interaction(slash_payload("integrate", "resume", {"slug": "alpha"}))
    await h.dispatch_interaction(autocomplete_payload("integrate", "resume", "slug", "b"))
    cmd, auto = h.requests()
    assert cmd.path.endswith("/itok/callback")
    assert cmd.json == {"type": 4, "data": {"content": "resume alpha", "flags": 64, "tts": False}}
    assert auto.json == {"type": 8, "data": {"choices": [{"name": "beta", "value": "beta"}]}}
