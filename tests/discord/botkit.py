"""The real bot (``bot.app.IntegratorBot``) on the offline harness, and helpers for its tests.

Only the gateway and HTTP are left out: ``OfflineBot.connect`` waits for ``close`` instead of
opening a websocket, and the client's HTTP is the recorder. Login, ``setup_hook``, the command tree,
the DynamicItems and the outbox delivery are the bot's own code.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any

from harness import APP_ID, Call, Recorder, RecordingHTTP, add_guild

from bot.app import IntegratorBot
from bot.runtime import ClientFactory
from integrator.service import Integrator

POST = "POST /channels/{channel_id}/messages"
CALLBACK = "POST /interactions/{webhook_id}/{webhook_token}/callback"
FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"
SYNC_GLOBAL = "PUT /applications/{application_id}/commands"
SYNC_GUILD = "PUT /applications/{application_id}/guilds/{guild_id}/commands"

_command_ids = itertools.count(7100)


class OfflineBot(IntegratorBot):
    """The bot as shipped, minus the websocket: ``connect`` lasts until ``close``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gateway_closed = asyncio.Event()

    async def setup_hook(self) -> None:
        await super().setup_hook()
        add_guild(self)  # what GUILD_CREATE would cache: the channel and the named roles

    async def connect(self, *, reconnect: bool = True) -> None:
        await self.gateway_closed.wait()

    async def close(self) -> None:
        self.gateway_closed.set()
        await super().close()


def echo_commands(call: Call) -> list[dict[str, Any]]:
    """Discord's answer to a bulk overwrite: the commands it now has, with ids."""
    return [
        {**command, "id": str(next(_command_ids)), "application_id": str(APP_ID), "version": "1"}
        for command in call.json
    ]


def allow_sync(recorder: Recorder) -> None:
    recorder.on(SYNC_GLOBAL, echo_commands)
    recorder.on(SYNC_GUILD, echo_commands)


def use_recorder(client: IntegratorBot, recorder: Recorder) -> IntegratorBot:
    """Point every holder of the client's HTTP at the recorder (the tree keeps its own reference)."""
    fake = RecordingHTTP(recorder, asyncio.get_running_loop())
    client.http = client._connection.http = client.tree._http = fake
    return client


def offline_factory(recorder: Recorder, *, sync_commands: bool = False) -> ClientFactory:
    """A ``BotRuntime`` client factory whose clients talk to ``recorder``."""
    allow_sync(recorder)

    def build(integ: Integrator) -> IntegratorBot:
        return use_recorder(OfflineBot(integ, sync_commands=sync_commands), recorder)

    return build


async def interact(client: IntegratorBot, payload: dict[str, Any], timeout: float = 20.0) -> None:
    """Deliver an INTERACTION_CREATE and wait for exactly the work it started.

    Waits on the tasks the dispatch created (the CommandTree invoker, the DynamicItem call) instead
    of "no task finished for a while": a handler that fetches runs for longer than that, and the
    bot's own background loops never settle.
    """
    before = asyncio.all_tasks()
    client._connection.parsers["INTERACTION_CREATE"](payload)
    started = asyncio.all_tasks() - before
    if started:
        _, pending = await asyncio.wait(started, timeout=timeout)
        assert not pending, f"interaction still running after {timeout}s: {pending}"


def posts(recorder: Recorder) -> list[Call]:
    """Messages created in channels (notifications, launchers), in order."""
    return recorder.requests(POST)


def replies(recorder: Recorder) -> list[Call]:
    """What went back over the interaction path: callbacks and followups, in order."""
    return [c for c in recorder.requests() if c.key in (CALLBACK, FOLLOWUP)]


def reply_text(call: Call) -> str:
    body = call.json or {}
    return str(body.get("data", body).get("content", ""))


def nonces(calls: Sequence[Call]) -> list[str]:
    return [c.json["nonce"] for c in calls]


def contains(text: str) -> Callable[[Call], bool]:
    return lambda call: text in json.dumps(call.json, ensure_ascii=False)
