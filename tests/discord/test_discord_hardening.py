"""Issue #16 "The bot": the evidence file holds the store's full evidence, long names never break a
message, next-step commands render as code, an expired interaction is one INFO line, and every button
id gets an answer."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlparse

import discord
import pytest
import samples
import scenarios
from botkit import CALLBACK, interact, posts, replies, reply_text
from conftest import BotEnv, async_wait_for, push_feature, readiness_events
from harness import (
    ADMIN_ROLE_ID,
    BOT_ID,
    CHANNEL_ID,
    GUILD_ID,
    USER_ID,
    button_click_payload,
    button_row,
    member_payload,
    message_with_components,
    role_payload,
    slash_payload,
)

from bot import permissions
from integrator.notifications import IntegrationBlocked
from teleclaude.adapters.discord_format import CONTENT_MAX
from teleclaude.adapters.discord_render import EVIDENCE_FILE_MAX_BYTES, evidence_file, render

ADMIN = member_payload(USER_ID, role_ids=[ADMIN_ROLE_ID])


def test_a_2204_character_branch_is_shortened_on_its_own_and_the_sha_stays_visible() -> None:
    note = samples.ready()
    long_branch = "feat/" + "x" * 2199
    note["payload"]["branch"] = long_branch
    spec = render(samples.note(note))
    assert len(spec.content) <= CONTENT_MAX
    assert spec.content.count("`") % 2 == 0, "every code span is closed"
    assert f"`{samples.SHA[:10]}`" in spec.content
    assert "…" in spec.content and long_branch not in spec.content


def test_next_step_commands_in_the_blocked_embed_render_as_code() -> None:
    note = samples.blocked()
    note["payload"]["next_action"] = "Fix it, then run `integrator resume feat-a` (or `integrator blocked`)."
    [embed] = render(samples.note(note)).embeds
    assert "`integrator resume feat-a`" in embed["description"]
    assert "\\`" not in embed["description"]


def test_the_evidence_file_is_the_stores_full_text_capped_at_a_stated_size() -> None:
    full_hunk = "".join(f"line {n}\n" for n in range(10_000))
    note = samples.blocked()
    note["payload"]["evidence"]["hunks"] = {"src/app.py": "line 0\n… 9999 more lines"}
    full = {**note["payload"]["evidence"], "hunks_full": {"src/app.py": full_hunk}}
    [attached] = render(samples.note(note), full).files
    text = attached.data.decode()
    assert "line 9999\n" in text and "more lines" not in text
    huge = dict(full, log_full="y" * (2 * EVIDENCE_FILE_MAX_BYTES))
    payload = samples.note(note).payload
    assert isinstance(payload, IntegrationBlocked)
    capped = evidence_file(payload, huge)
    assert len(capped) <= EVIDENCE_FILE_MAX_BYTES
    assert capped.decode().rstrip().endswith("(`integrator blocked --json`)")


async def test_the_posted_evidence_file_comes_from_the_store(bot_env: BotEnv) -> None:
    lines = 1000
    feature = push_feature(
        bot_env.sandbox, "big", {"shared.txt": "".join(f"feat line {n}\n" for n in range(lines))}
    )
    scenarios.move_main(bot_env.sandbox, {"shared.txt": "".join(f"main line {n}\n" for n in range(lines))})
    await bot_env.integ.emit(readiness_events(feature.slug, feature.branch, feature.sha), wait=True)
    await scenarios.drain(bot_env)

    def blocked_post() -> Any:
        found = [c for c in posts(bot_env.recorder) if "blocked" in str((c.json or {}).get("content"))]
        return found[0] if found else None

    post = await async_wait_for(blocked_post, timeout=20)
    [attached] = post.files
    text = attached.data.decode()
    assert f"feat line {lines - 1}" in text and f"main line {lines - 1}" in text
    assert "more lines" not in text


async def test_a_button_id_nobody_matches_still_gets_an_answer(bot_env: BotEnv) -> None:
    message = message_with_components([button_row(("resume:Bad_Slug", "Resume"))])
    await interact(bot_env.client, button_click_payload("resume:Bad_Slug", message, member=ADMIN))
    [reply] = replies(bot_env.recorder)
    assert reply.key == CALLBACK
    assert "is not one the integrator knows" in reply_text(reply)


def expired() -> discord.NotFound:
    response = SimpleNamespace(status=404, reason="Not Found")
    return discord.NotFound(response, {"code": 10062, "message": "Unknown interaction"})  # type: ignore[arg-type]


@pytest.mark.parametrize("what", ["button", "command"])
async def test_an_expired_interaction_is_one_info_line(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture, what: str
) -> None:
    bot_env.recorder.on(CALLBACK, expired())
    caplog.set_level(logging.INFO)
    if what == "button":
        message = message_with_components([button_row(("resume:feat-x", "Resume"))])
        payload = button_click_payload("resume:feat-x", message, member=ADMIN)
    else:
        payload = slash_payload("integrate", "status", member=ADMIN)
    await interact(bot_env.client, payload)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    [line] = [r.getMessage() for r in caplog.records if "interaction_expired" in r.getMessage()]
    assert line.startswith("event=interaction_expired")


# -- a newcomer's server: the invite link and the start-up channel check ------------------------------
BOT_SCRIPT = str(Path(sys.executable).with_name("teleclaude-bot"))


def test_the_invite_url_asks_for_exactly_the_scopes_and_permissions_the_docs_name() -> None:
    res = subprocess.run(
        [BOT_SCRIPT, "--invite-url", "--application-id", "1234", "--config", "/nonexistent.toml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    query = parse_qs(urlparse(res.stdout.strip()).query)
    assert query["client_id"] == ["1234"] and query["scope"] == ["bot applications.commands"]
    granted = discord.Permissions(int(query["permissions"][0]))
    expected = discord.Permissions(view_channel=True, send_messages=True, embed_links=True, attach_files=True)
    assert granted.value == expected.value == 1024 + 2048 + 16384 + 32768
    docs = (Path(__file__).resolve().parents[2] / "docs" / "discord.md").read_text(encoding="utf-8")
    for shown in (
        "View Channel",
        "Send Messages",
        "Embed Links",
        "Attach Files",
        "bot applications.commands",
    ):
        assert shown in docs


def give_the_bot(env: BotEnv, permissions: discord.Permissions) -> None:
    """The bot as a member of the cached guild, with one role granting ``permissions``."""
    client, state = env.client, env.client._connection
    guild = client.get_guild(GUILD_ID)
    assert guild is not None
    data = role_payload(7777, "integrator-bot", 3)
    data["permissions"] = str(permissions.value)
    guild._add_role(discord.Role(guild=guild, state=state, data=data))  # type: ignore[arg-type]
    member = member_payload(BOT_ID, role_ids=[7777], name="integrator")
    guild._add_member(discord.Member(data=member, guild=guild, state=state))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("granted", "lacking"),
    [
        (discord.Permissions(view_channel=True, send_messages=True, attach_files=True), "Embed Links"),
        # Without Send Messages, Discord denies embeds and files too: all three are named.
        (
            discord.Permissions(view_channel=True, embed_links=True, attach_files=True),
            "Send Messages, Embed Links, Attach Files",
        ),
    ],
)
async def test_start_up_names_the_permissions_the_channel_lacks(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture, granted: discord.Permissions, lacking: str
) -> None:
    give_the_bot(bot_env, granted)
    caplog.set_level(logging.INFO)
    problem = await bot_env.client.check_channel()
    assert problem == f"the bot lacks {lacking} in channel #integration ({CHANNEL_ID})"
    [line] = [r for r in caplog.records if "channel_check_failed" in r.getMessage()]
    assert line.levelno == logging.WARNING and problem in line.getMessage()


async def test_start_up_is_quiet_when_the_channel_has_everything(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    give_the_bot(bot_env, permissions.needed())
    caplog.set_level(logging.INFO)
    assert await bot_env.client.check_channel() is None
    assert any("event=channel_ok" in r.getMessage() for r in caplog.records)


async def test_start_up_says_when_the_channel_does_not_exist(bot_env: BotEnv) -> None:
    bot_env.client.cfg.discord.channel_id = 999_999  # type: ignore[misc]
    response = SimpleNamespace(status=404, reason="Not Found")
    bot_env.recorder.on(
        "GET /channels/{channel_id}",
        discord.NotFound(response, {"code": 10003, "message": "Unknown Channel"}),
    )  # type: ignore[arg-type]
    problem = await bot_env.client.check_channel()
    assert problem == "channel 999999 does not exist or the bot cannot see it (check discord.channel_id)"
