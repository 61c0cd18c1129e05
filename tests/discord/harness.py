"""Offline harness: a real discord.py client whose two outbound paths are recorders.

Only ``HTTPClient.request`` (REST: login, ``channel.send``) and ``AsyncWebhookAdapter.request``
(interaction callbacks and followups) are replaced. Everything between a gateway payload and the
wire (ConnectionState parsers, CommandTree, ViewStore, DynamicItem, Embed, File) is the real code,
so a test asserts on the exact request Discord would receive.

Measured facts this relies on are in ``../shared/notes/discord-offline-testing.md`` (beside the project).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import discord
from discord.http import HTTPClient, Route
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

APP_ID = 1000
BOT_ID = 1001
GUILD_ID = 2000
CHANNEL_ID = 3000
USER_ID = 4000
ADMIN_ROLE_ID = 6000
OTHER_ROLE_ID = 6001
ATTACHMENT_LIMIT = 8 * 1024 * 1024

BOT_USER: dict[str, Any] = {
    "id": str(BOT_ID),
    "username": "integrator",
    "discriminator": "0",
    "global_name": "Integrator",
    "avatar": None,
    "bot": True,
}

ClientT = TypeVar("ClientT", bound=discord.Client)


class UnexpectedRoute(AssertionError):
    """A request for which the test gave no canned response: the code under test did something unplanned."""


@dataclass(frozen=True)
class RecordedFile:
    filename: str
    data: bytes


@dataclass(frozen=True)
class Call:
    """One outbound request as Discord would see it."""

    via: str  # "http" (REST) or "webhook" (interaction callbacks and followups)
    method: str
    template: str  # Route.path, e.g. /channels/{channel_id}/messages
    path: str  # the concrete path, e.g. /channels/3000/messages
    json: Any  # JSON body; for multipart requests the decoded ``payload_json`` form item
    files: tuple[RecordedFile, ...] = ()
    params: Mapping[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def is_multipart(self) -> bool:
        return bool(self.files)


Responder = Callable[[Call], Any]


def _snowflake_counter(start: int) -> Callable[[], int]:
    counter = itertools.count(start)
    return lambda: next(counter)


@dataclass
class Recorder:
    """Shared by both fakes: every call in order, canned responses by ``"METHOD /template"``."""

    calls: list[Call] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    responses: dict[str, Any] = field(default_factory=dict)
    next_id: Callable[[], int] = field(default_factory=lambda: _snowflake_counter(5000))

    def __post_init__(self) -> None:
        self.responses.update(
            {
                "GET /users/@me": dict(BOT_USER),
                "GET /oauth2/applications/@me": {
                    "id": str(APP_ID),
                    "name": "integrator",
                    "description": "",
                    "icon": None,
                    "bot_public": False,
                    "bot_require_code_grant": False,
                    "verify_key": "0" * 64,
                    "owner": dict(BOT_USER),
                    "flags": 0,
                },
                "POST /channels/{channel_id}/messages": self._channel_message,
                "POST /interactions/{webhook_id}/{webhook_token}/callback": self._callback,
                "POST /webhooks/{webhook_id}/{webhook_token}": self._webhook_message,
                "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original": self._webhook_message,
            }
        )

    # -- recording ---------------------------------------------------------------------------------
    def record(self, call: Call) -> Any:
        self.calls.append(call)
        response = self.responses.get(call.key)
        if response is None:
            message = f"no canned response for {call.key} ({call.path})"
            self.errors.append(message)
            raise UnexpectedRoute(message)
        if isinstance(response, BaseException):
            raise response
        if callable(response):
            return response(call)
        return response

    def on(self, key: str, response: Any) -> None:
        """Override or add a canned response (an object, a ``fn(call)``, or an exception to raise)."""
        self.responses[key] = response

    def requests(self, key: str | None = None) -> list[Call]:
        """Calls after login, optionally only those matching ``"METHOD /template"``."""
        login = {"GET /users/@me", "GET /oauth2/applications/@me"}
        return [c for c in self.calls if c.key not in login and (key is None or c.key == key)]

    def clear(self) -> None:
        self.calls.clear()

    # -- canned payloads ---------------------------------------------------------------------------
    def message_payload(
        self, channel_id: int, body: Mapping[str, Any] | None, files: Sequence[RecordedFile]
    ) -> dict[str, Any]:
        """A full message object, the way Discord echoes a created message back."""
        body = body or {}
        message_id = self.next_id()
        attachments = [
            {
                "id": str(self.next_id()),
                "filename": f.filename,
                "size": len(f.data),
                "url": f"https://cdn.example/{f.filename}",
                "proxy_url": f"https://media.example/{f.filename}",
            }
            for f in files
        ]
        payload: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "guild_id": str(GUILD_ID),
            "author": dict(BOT_USER),
            "content": body.get("content") or "",
            "timestamp": "2024-01-01T00:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": body.get("embeds", []),
            "components": body.get("components", []),
            "pinned": False,
            "type": 0,
            "flags": body.get("flags", 0),
        }
        if "nonce" in body:
            payload["nonce"] = body["nonce"]
        self.messages[message_id] = payload
        return payload

    def _channel_message(self, call: Call) -> dict[str, Any]:
        channel_id = int(call.path.split("/")[2])
        return self.message_payload(channel_id, call.json, call.files)

    def _webhook_message(self, call: Call) -> dict[str, Any]:
        return self.message_payload(CHANNEL_ID, call.json, call.files)

    def _callback(self, call: Call) -> dict[str, Any]:
        interaction_id = call.path.split("/")[2]
        return {
            "interaction": {
                "id": interaction_id,
                "type": (call.json or {}).get("type", 4),
                "response_message_id": str(self.next_id()),
            }
        }


def _read_files(files: Iterable[discord.File] | None) -> tuple[RecordedFile, ...]:
    # discord.py closes the File objects as soon as the request returns, so read them now.
    recorded = []
    for f in files or ():
        f.reset()
        recorded.append(RecordedFile(filename=f.filename or "", data=f.fp.read()))
    return tuple(recorded)


def _decode_multipart(form: Iterable[Mapping[str, Any]] | None) -> Any:
    for item in form or ():
        if item["name"] == "payload_json":
            return json.loads(item["value"])
    return None


def _concrete_path(route: Route) -> str:
    return route.url[len(Route.BASE) :]


class RecordingHTTP(HTTPClient):
    """REST path: login, ``channel.send`` and every other ``HTTPClient`` method end here."""

    def __init__(self, recorder: Recorder, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop, connector=None)
        self.recorder = recorder

    async def static_login(self, token: str) -> Any:
        # The real one opens an aiohttp session; the token itself is never recorded.
        self.token = token
        return await self.request(Route("GET", "/users/@me"))

    async def request(
        self,
        route: Route,
        *,
        files: Sequence[discord.File] | None = None,
        form: Iterable[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        body = _decode_multipart(form) if form else kwargs.get("json")
        call = Call(
            "http",
            route.method,
            route.path,
            _concrete_path(route),
            body,
            _read_files(files),
            kwargs.get("params"),
        )
        result = self.recorder.record(call)
        # An async responder can hold the request open: a slow or hanging Discord.
        return await result if inspect.isawaitable(result) else result


class RecordingWebhookAdapter(AsyncWebhookAdapter):
    """Interaction path: callbacks (``response.*``), followups and ``edit_original_response``."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.recorder = recorder

    async def request(
        self,
        route: Route,
        session: Any,
        *,
        payload: dict[str, Any] | None = None,
        multipart: list[dict[str, Any]] | None = None,
        files: Sequence[discord.File] | None = None,
        params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        body = _decode_multipart(multipart) if multipart else payload
        call = Call(
            "webhook", route.method, route.path, _concrete_path(route), body, _read_files(files), params
        )
        return self.recorder.record(call)


@dataclass
class Harness:
    client: discord.Client
    recorder: Recorder
    previous_adapter: AsyncWebhookAdapter

    @property
    def calls(self) -> list[Call]:
        return self.recorder.calls

    def requests(self, key: str | None = None) -> list[Call]:
        return self.recorder.requests(key)

    async def dispatch_interaction(self, payload: dict[str, Any]) -> None:
        """Feed a gateway INTERACTION_CREATE, then wait until everything it scheduled is done."""
        self.client._connection.parsers["INTERACTION_CREATE"](payload)
        await settle()

    async def close(self) -> None:
        await settle()
        await self.client.close()
        # Not Token.reset: pytest-asyncio may run teardown in another Context than setup.
        async_context.set(self.previous_adapter)


async def make_harness(cls: type[ClientT] = discord.Client, /, **kwargs: Any) -> Harness:  # type: ignore[assignment]
    """Build and log in a real client of ``cls``; ``setup_hook`` runs as part of login."""
    kwargs.setdefault("intents", discord.Intents.default())
    client = cls(**kwargs)
    recorder = Recorder()
    fake = RecordingHTTP(recorder, asyncio.get_running_loop())
    # ConnectionState keeps its own reference to the HTTP client.
    client.http = client._connection.http = fake
    previous = async_context.get()
    async_context.set(RecordingWebhookAdapter(recorder))
    await client.login("fake-token")
    return Harness(client=client, recorder=recorder, previous_adapter=previous)


async def settle(*, rounds: int = 40, step: float = 0.05) -> None:
    """Wait (bounded) for the tasks that dispatch, CommandTree and ViewStore spawned.

    A non-persistent ``View(timeout=...)`` leaves a sleeping timeout task behind, so this gives up
    after ``rounds`` steps instead of waiting for every task to end.
    """
    for _ in range(rounds):
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        if not pending:
            return
        done, _ = await asyncio.wait(pending, timeout=step)
        if not done:
            return


# -- guild state -----------------------------------------------------------------------------------
def role_payload(role_id: int, name: str, position: int = 1) -> dict[str, Any]:
    return {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "hoist": False,
        "position": position,
        "permissions": "0",
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def text_channel_payload(
    channel_id: int = CHANNEL_ID, guild_id: int = GUILD_ID, name: str = "integration"
) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


def add_guild(
    client: discord.Client,
    *,
    guild_id: int = GUILD_ID,
    channel_id: int = CHANNEL_ID,
    roles: Mapping[str, int] | None = None,
) -> discord.Guild:
    """Cache a guild with one text channel and named roles, as GUILD_CREATE would."""
    roles = {"integrator-admin": ADMIN_ROLE_ID, "member": OTHER_ROLE_ID} if roles is None else roles
    role_list = [role_payload(guild_id, "@everyone", 0)]
    role_list += [role_payload(rid, name, pos) for pos, (name, rid) in enumerate(roles.items(), start=1)]
    data = {
        "id": str(guild_id),
        "name": "team",
        "owner_id": str(USER_ID + 99),
        "roles": role_list,
        "channels": [text_channel_payload(channel_id, guild_id)],
        "members": [],
        "emojis": [],
        "stickers": [],
        "features": [],
        "member_count": 2,
    }
    return client._connection._add_guild_from_data(data)  # type: ignore[arg-type]


def text_channel(client: discord.Client, channel_id: int = CHANNEL_ID) -> discord.TextChannel:
    channel = client.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel), f"channel {channel_id} not cached: call add_guild first"
    return channel


# -- interaction payloads --------------------------------------------------------------------------
_interaction_ids = itertools.count(9000)


def user_payload(user_id: int = USER_ID, name: str = "alice") -> dict[str, Any]:
    return {"id": str(user_id), "username": name, "discriminator": "0", "global_name": name, "avatar": None}


def member_payload(
    user_id: int = USER_ID, *, role_ids: Sequence[int] = (), name: str = "alice"
) -> dict[str, Any]:
    return {
        "user": user_payload(user_id, name),
        "roles": [str(r) for r in role_ids],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "permissions": "0",
    }


def interaction_payload(
    type_: int,
    data: dict[str, Any],
    *,
    member: dict[str, Any] | None = None,
    guild_id: int | None = GUILD_ID,
    channel_id: int = CHANNEL_ID,
    message: dict[str, Any] | None = None,
    interaction_id: int | None = None,
) -> dict[str, Any]:
    """A gateway INTERACTION_CREATE payload with every key discord.py 2.7.1 requires."""
    payload: dict[str, Any] = {
        "id": str(interaction_id if interaction_id is not None else next(_interaction_ids)),
        "application_id": str(APP_ID),
        "type": type_,
        "token": "itok",
        "version": 1,
        "channel_id": str(channel_id),
        "channel": text_channel_payload(channel_id, guild_id or GUILD_ID),
        "data": data,
        "locale": "en-US",
        "app_permissions": "2147483647",
        "attachment_size_limit": ATTACHMENT_LIMIT,
        "entitlements": [],
        "context": 0 if guild_id else 1,
    }
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
        payload["guild_locale"] = "en-US"
        payload["member"] = member if member is not None else member_payload()
        payload["authorizing_integration_owners"] = {"0": str(guild_id)}
    else:
        payload["user"] = (member or {}).get("user", user_payload())
        payload["authorizing_integration_owners"] = {"1": payload["user"]["id"]}
        del payload["channel"]["guild_id"]
        payload["channel"]["type"] = 1
    if message is not None:
        payload["message"] = message
    return payload


def option_type(value: object) -> int:
    if isinstance(value, bool):
        return 5
    return 4 if isinstance(value, int) else 3


def slash_payload(
    command: str,
    subcommand: str | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    member: dict[str, Any] | None = None,
    guild_id: int | None = GUILD_ID,
) -> dict[str, Any]:
    """A global slash command with options nested under a subcommand if given.

    The option type follows the Python value: str 3, int 4, bool 5. A global command's ``data``
    must not carry a ``guild_id``, or the tree looks in guild commands.
    """
    opts = [{"name": k, "type": option_type(v), "value": v} for k, v in (options or {}).items()]
    if subcommand is not None:
        opts = [{"name": subcommand, "type": 1, "options": opts}]
    data = {"id": "7000", "name": command, "type": 1, "options": opts}
    return interaction_payload(2, data, member=member, guild_id=guild_id)


def autocomplete_payload(
    command: str,
    subcommand: str | None,
    focused: str,
    value: str,
    *,
    member: dict[str, Any] | None = None,
) -> dict[str, Any]:
    opts: list[dict[str, Any]] = [{"name": focused, "type": 3, "value": value, "focused": True}]
    if subcommand is not None:
        opts = [{"name": subcommand, "type": 1, "options": opts}]
    data = {"id": "7000", "name": command, "type": 1, "options": opts}
    return interaction_payload(4, data, member=member)


def button_click_payload(
    custom_id: str,
    message: dict[str, Any],
    *,
    member: dict[str, Any] | None = None,
    guild_id: int | None = GUILD_ID,
) -> dict[str, Any]:
    """A click on a button of ``message`` (a message payload, e.g. one the recorder echoed back).

    ViewStore ignores a DynamicItem click unless the message's components contain the clicked button,
    so the message must be the real one, not a stub.
    """
    found = [
        c
        for row in message.get("components", [])
        for c in row.get("components", [])
        if c.get("custom_id") == custom_id
    ]
    assert found, f"message has no component with custom_id {custom_id!r}"
    data = {"custom_id": custom_id, "component_type": found[0]["type"]}
    return interaction_payload(3, data, member=member, guild_id=guild_id, message=message)


def message_with_components(components: list[dict[str, Any]], *, message_id: int = 8000) -> dict[str, Any]:
    """A message as Discord would send it inside a click, for buttons this process never posted."""
    recorder = Recorder()
    payload = recorder.message_payload(CHANNEL_ID, {"content": "", "components": components}, ())
    payload["id"] = str(message_id)
    return payload


def button_row(*buttons: tuple[str, str]) -> dict[str, Any]:
    """An action row of (custom_id, label) buttons."""
    return {
        "type": 1,
        "components": [
            {"type": 2, "style": 1, "custom_id": cid, "label": label, "disabled": False}
            for cid, label in buttons
        ],
    }


def without_nonce(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("nonce", "enforce_nonce")}


def components_of(body: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """Buttons of a sent message body, row by row."""
    return [row["components"] for row in body.get("components", [])]
