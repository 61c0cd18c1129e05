"""DiscordAdapter: the only code that turns product notifications into Discord messages and views.

``integrator`` never imports this module (nor discord); this module imports both (docs/discord.md).
The Resume and launcher buttons are DynamicItems defined here at module level: the custom id carries
the state, and the adapter registered on the clicked client answers (:meth:`register_persistent`).

A bot wires it like this::

    adapter = DiscordAdapter(resume_handler=..., launcher=..., agents=cfg.discord.agents,
                             admin_role=cfg.discord.admin_role)
    # in setup_hook (runs once per process; on_ready runs again on every reconnect):
    adapter.register_persistent(client)
    # delivering an outbox notification:
    await adapter.send(channel, notification)
    # answering a slash command with a reply rendered by discord_replies:
    await adapter.respond(interaction, discord_replies.status(data))
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, Self

import discord

from integrator.config import AgentConfig, DiscordConfig
from integrator.errors import IntegratorError
from integrator.outbox import Notification
from teleclaude.adapters import discord_replies
from teleclaude.adapters.discord_format import CONTENT_MAX, clip, code, escape
from teleclaude.adapters.discord_render import (
    SLUG_RE,
    MessageSpec,
    NotificationError,
    render,
)

__all__ = [
    "LAUNCH_TEMPLATE",
    "RESUME_TEMPLATE",
    "DiscordAdapter",
    "DiscordUser",
    "LaunchButton",
    "LaunchError",
    "LaunchUser",
    "Launcher",
    "MessageSpec",
    "NotificationError",
    "ResumeButton",
    "ResumeHandler",
    "actor",
    "agent_key",
    "has_role",
    "launch_label",
    "render",
    "role_names",
]

log = logging.getLogger(__name__)

# Discord's JSON error code for an interaction whose token is no longer valid.
UNKNOWN_INTERACTION = 10062
RESUME_TEMPLATE = r"resume:(?P<slug>[a-z0-9][a-z0-9-]{0,63})"
LAUNCH_TEMPLATE = r"launch:(?P<agent>.+)"
LAUNCH_PREFIX = "launch:"
CUSTOM_ID_MAX = 100
LABEL_MAX = 80
BUTTONS_PER_ROW = 5
BUTTONS_PER_MESSAGE = 25  # 5 action rows of 5 buttons
NONCE_MAX = 25
_INT64_DIGITS = 19

# Names kept verbatim in the custom id; anything else gets a slug plus a hash. "~" is not in this
# set, so a derived key can never equal a verbatim one.
_PLAIN_AGENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class LaunchUser(Protocol):
    """What a launcher may rely on about the clicking user (``discord.User`` and ``Member`` fit)."""

    @property
    def id(self) -> int: ...


class DiscordUser(LaunchUser, Protocol):
    """A user with a name: what the core records as who did something."""

    @property
    def name(self) -> str: ...


def log_expired(interaction: discord.Interaction[Any]) -> None:
    """An expired interaction is the user's click arriving late, not our failure: one INFO line."""
    data: Mapping[str, Any] = interaction.data or {}
    what = data.get("custom_id") or data.get("name") or "?"
    log.info("event=interaction_expired what=%s user=%s", what, interaction.user.id)


def actor(user: DiscordUser) -> str:
    """``by`` for the core's audit records: ``discord:<name>#<id>`` (the id is what stays stable)."""
    return f"discord:{user.name}#{user.id}"


# (slug, the clicking user, the user's role names) -> a short reply. The bot's handler applies the
# same rules as ``integrator resume``; an IntegratorError's message is shown to the user as is.
ResumeHandler = Callable[[str, DiscordUser, Sequence[str]], Awaitable[str]]
# (agent, user) -> a short description of what was started; raise LaunchError with a user-safe message.
Launcher = Callable[[AgentConfig, LaunchUser], Awaitable[str]]


class LaunchError(Exception):
    """A launch that failed for a reason the user may read (command missing, bad directory)."""


def agent_key(name: str) -> str:
    """The stable part of an agent's custom id: the name itself if it is plain and fits, else slug~hash."""
    if _PLAIN_AGENT_RE.fullmatch(name) and len(LAUNCH_PREFIX) + len(name) <= CUSTOM_ID_MAX:
        return name
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-") or "agent"
    return f"{slug}~{hashlib.sha256(name.encode('utf-8')).hexdigest()[:10]}"


def launch_label(name: str) -> str:
    return clip(" ".join(name.split()), LABEL_MAX) or "agent"


def role_names(user: object) -> tuple[str, ...] | None:
    """Role names of a guild member; None for a user outside a guild (a DM has no roles)."""
    roles = getattr(user, "roles", None)
    if roles is None:
        return None
    return tuple(str(getattr(r, "name", "")) for r in roles)


def has_role(user: object, role: str) -> bool:
    """The one role check (admin commands, Resume, withdraw, launcher): a guild member holding ``role``."""
    roles = role_names(user)
    return roles is not None and role in roles


class DiscordAdapter:
    """Renders notifications, posts them, and answers the Resume and launcher buttons."""

    def __init__(
        self,
        *,
        resume_handler: ResumeHandler | None = None,
        launcher: Launcher | None = None,
        agents: Sequence[AgentConfig] = (),
        admin_role: str = "integrator-admin",
        launch_role: str | None = None,
        nonce_prefix: str = "tc-ob-",
    ) -> None:
        if len(nonce_prefix) + _INT64_DIGITS > NONCE_MAX:
            raise ValueError(f"nonce_prefix may have at most {NONCE_MAX - _INT64_DIGITS} characters")
        self.resume_handler = resume_handler
        self.launcher = launcher
        self.admin_role = admin_role
        # Starting a process on the host is at least as sensitive as resuming, so by default only
        # admins may do it; "" opens it to every member.
        self.launch_role = launch_role if launch_role is not None else admin_role
        self.nonce_prefix = nonce_prefix
        self._by_key: dict[str, AgentConfig] = {}
        self._launchable: list[tuple[str, AgentConfig]] = []
        self.set_agents(agents)

    @classmethod
    def from_config(cls, cfg: DiscordConfig, **kwargs: Any) -> DiscordAdapter:
        return cls(agents=cfg.agents, admin_role=cfg.admin_role, **kwargs)

    # ------------------------------------------------------------------------------ registration
    def register_persistent(self, client: discord.Client) -> bool:
        """Make Resume and launcher buttons answer on any message, old ones included.

        Call it from ``setup_hook``. It is also safe from ``on_ready``: a second call for the same
        client does nothing and returns False, so a reconnect never registers twice.
        """
        if _ADAPTERS.get(client) is self:
            log.debug("discord persistent items already registered; skipping")
            return False
        # Both are DynamicItems: the custom id carries the state, so no per-message view is kept
        # and buttons on messages from before a restart still dispatch (to this client's adapter).
        _ADAPTERS[client] = self
        client.add_dynamic_items(ResumeButton, LaunchButton)
        return True

    # ----------------------------------------------------------------------------- notifications
    def nonce_for(self, notification: Notification) -> str:
        """Same outbox row, same nonce: Discord drops a re-send after a crash between send and ack."""
        return f"{self.nonce_prefix}{notification.id}"

    def message_kwargs(self, spec: MessageSpec) -> dict[str, Any]:
        """``channel.send`` keyword arguments for a rendered spec."""
        kwargs: dict[str, Any] = {"content": spec.content, "allowed_mentions": discord.AllowedMentions.none()}
        if spec.embeds:
            kwargs["embeds"] = [discord.Embed.from_dict(dict(e)) for e in spec.embeds]
        if spec.files:
            kwargs["files"] = [discord.File(io.BytesIO(f.data), filename=f.filename) for f in spec.files]
        if spec.resume_slug is not None:
            if SLUG_RE.fullmatch(spec.resume_slug):
                view = discord.ui.View(timeout=None)
                view.add_item(ResumeButton(spec.resume_slug, self))
                kwargs["view"] = view
            else:
                log.warning("no resume button: slug %r does not fit the custom id template", spec.resume_slug)
        return kwargs

    async def send(
        self,
        channel: discord.abc.Messageable,
        notification: Notification,
        full_evidence: Mapping[str, Any] | None = None,
    ) -> discord.Message:
        """Post one outbox notification. Discord errors propagate so the outbox retries later.

        ``full_evidence``: a blocked notification's untrimmed evidence from the store (the attached
        file). discord.py 2.7.1's ``send`` has no ``enforce_nonce`` parameter: it adds
        ``"enforce_nonce": true`` to the request whenever a nonce is given.
        """
        spec = render(notification, full_evidence)
        return await channel.send(nonce=self.nonce_for(notification), **self.message_kwargs(spec))

    def undeliverable(self, notification: Notification, error: object) -> MessageSpec:
        """What the channel sees instead of a notification that can never be rendered or accepted."""
        return MessageSpec(
            clip(
                f"⚠️ Notification #{notification.id} ({escape(notification.kind)}) could not be shown: "
                f"{escape(error)}\nIts full record is in the integrator's outbox (`integrator status`).",
                CONTENT_MAX,
            )
        )

    async def send_undeliverable(
        self, channel: discord.abc.Messageable, notification: Notification, error: object
    ) -> discord.Message:
        """Post :meth:`undeliverable` with the notification's own nonce (still one message per row)."""
        spec = self.undeliverable(notification, error)
        return await channel.send(nonce=self.nonce_for(notification), **self.message_kwargs(spec))

    # ----------------------------------------------------------------------------------- replies
    async def respond(
        self, interaction: discord.Interaction[Any], spec: MessageSpec, *, ephemeral: bool = True
    ) -> None:
        """Answer an interaction with a rendered reply: the first response, or a followup after a defer."""
        kwargs = self.message_kwargs(spec)
        if interaction.response.is_done():
            await interaction.followup.send(ephemeral=ephemeral, **kwargs)
        else:
            await interaction.response.send_message(ephemeral=ephemeral, **kwargs)

    # ---------------------------------------------------------------------------------- launcher
    def set_agents(self, agents: Sequence[AgentConfig]) -> None:
        """Replace the agent list (config reload). Old buttons of removed agents get a polite reply."""
        by_key: dict[str, AgentConfig] = {}
        for agent in agents:
            key = agent_key(agent.name)
            if key in by_key:
                # One message cannot hold two buttons with one custom id; the first entry wins.
                log.warning("agent %r ignored: same launcher id as %r", agent.name, by_key[key].name)
                continue
            by_key[key] = agent
        self._by_key = by_key
        self._launchable = [(k, a) for k, a in by_key.items() if a.enabled]

    @property
    def launcher_pages(self) -> int:
        return -(-len(self._launchable) // BUTTONS_PER_MESSAGE)

    def _build_session_launcher_view(self, page: int = 0) -> discord.ui.View | None:
        """The persistent launcher view for one page of up to 25 enabled agents, or None if empty.

        Hardened (seed requirement): no import at call time (discord comes with this module);
        ``timeout=None`` and DynamicItem buttons, so it survives restarts and is registered by
        :meth:`register_persistent` once per process; zero agents give None; more than 25 agents are
        split over several views, one message each (``page``); every custom id is ``launch:<key>``
        with a key that fits 100 characters (:func:`agent_key`) and a label clipped to 80.
        """
        chunk = self._launchable[page * BUTTONS_PER_MESSAGE : (page + 1) * BUTTONS_PER_MESSAGE]
        if page < 0 or not chunk:
            return None
        view = discord.ui.View(timeout=None)
        for index, (key, agent) in enumerate(chunk):
            view.add_item(LaunchButton(key, launch_label(agent.name), self, row=index // BUTTONS_PER_ROW))
        return view

    def launcher_messages(self) -> list[tuple[str, discord.ui.View | None]]:
        """(content, view) per launcher message; with no agents, one message that says so."""
        pages = self.launcher_pages
        if pages == 0:
            return [
                ("No agents are enabled for the session launcher. Add one under [[discord.agents]].", None)
            ]
        out: list[tuple[str, discord.ui.View | None]] = []
        for page in range(pages):
            title = "🚀 **Start a session**: tap an agent"
            if pages > 1:
                first = page * BUTTONS_PER_MESSAGE + 1
                last = min(len(self._launchable), first + BUTTONS_PER_MESSAGE - 1)
                title += f" ({page + 1}/{pages}: agents {first}–{last})"
            out.append((title, self._build_session_launcher_view(page)))
        return out

    async def post_launcher(self, channel: discord.abc.Messageable) -> list[discord.Message]:
        sent = []
        for content, view in self.launcher_messages():
            kwargs: dict[str, Any] = {"allowed_mentions": discord.AllowedMentions.none()}
            if view is not None:
                kwargs["view"] = view
            sent.append(await channel.send(content, **kwargs))
        return sent

    # ------------------------------------------------------------------------------ interactions
    def is_expired(self, error: BaseException) -> bool:
        """Discord's "Unknown interaction": the 3-second window (or the 15-minute token) is over."""
        return isinstance(error, discord.NotFound) and getattr(error, "code", None) == UNKNOWN_INTERACTION

    async def _reply(self, interaction: discord.Interaction[Any], text: str) -> None:
        try:
            await interaction.response.send_message(
                clip(text, CONTENT_MAX), ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
        except discord.NotFound as err:
            if not self.is_expired(err):
                raise
            log_expired(interaction)

    async def _answer_later(
        self, interaction: discord.Interaction[Any], work: Callable[[], Awaitable[str]]
    ) -> None:
        # The handlers may fetch or spawn; deferring first keeps us inside Discord's 3-second window.
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
        except discord.NotFound as err:
            if not self.is_expired(err):
                raise
            log_expired(interaction)
            return  # nobody is waiting for an answer: do not act on a click the user saw fail
        text = await work()
        try:
            await interaction.followup.send(
                clip(text, CONTENT_MAX), ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
        except discord.NotFound as err:
            if not self.is_expired(err):
                raise
            log_expired(interaction)

    def knows_component(self, custom_id: str) -> bool:
        return bool(re.fullmatch(RESUME_TEMPLATE, custom_id) or re.fullmatch(LAUNCH_TEMPLATE, custom_id))

    async def on_unknown_component(self, interaction: discord.Interaction[Any], custom_id: str) -> None:
        """A button whose id none of ours matches (hand-made, or from another version) still gets an answer."""
        await self._reply(
            interaction,
            f"This button ({code(clip(custom_id, 100))}) is not one the integrator knows, so it did nothing. "
            "Use `/integrate status` or `/integrate resume`.",
        )

    async def on_resume_click(self, interaction: discord.Interaction[Any], slug: str) -> None:
        if not has_role(interaction.user, self.admin_role):
            await self._reply(
                interaction,
                discord_replies.only_role(
                    self.admin_role, "resume a blocked candidate", f"Ask one of them to resume **{slug}**."
                ),
            )
            return
        roles = role_names(interaction.user) or ()
        handler = self.resume_handler
        if handler is None:
            await self._reply(
                interaction, f"Resuming is not enabled in this bot. Run `integrator resume {slug}`."
            )
            return
        user = interaction.user

        async def work() -> str:
            try:
                return await handler(slug, user, roles)
            except IntegratorError as err:
                return discord_replies.resume_refused(slug, err).content
            except Exception:
                log.exception("resume handler failed slug=%s user=%s", slug, user.id)
                return f"Could not resume **{slug}**: internal error (it was logged)."

        await self._answer_later(interaction, work)

    async def on_launch_click(self, interaction: discord.Interaction[Any], key: str, label: str) -> None:
        agent = self._by_key.get(key)
        if agent is None:
            await self._reply(
                interaction,
                f"Sorry, **{escape(label)}** is no longer available: it was removed from the launcher. "
                "Use the newest launcher message.",
            )
            return
        if not agent.enabled:
            await self._reply(
                interaction, f"Sorry, **{escape(launch_label(agent.name))}** is disabled right now."
            )
            return
        if self.launch_role and not has_role(interaction.user, self.launch_role):
            await self._reply(interaction, discord_replies.only_role(self.launch_role, "start sessions"))
            return
        launcher = self.launcher
        if launcher is None:
            await self._reply(interaction, "Starting sessions is not enabled in this bot.")
            return
        user = interaction.user
        name = escape(launch_label(agent.name))

        async def work() -> str:
            try:
                return await launcher(agent, user)
            except LaunchError as err:
                return f"Could not start **{name}**: {err}"
            except Exception:
                log.exception("launcher failed agent=%r user=%s", agent.name, user.id)
                return f"Could not start **{name}**: internal error (it was logged)."

        await self._answer_later(interaction, work)


# The adapter registered on each client: a button rebuilt from a custom id (a message from before a
# restart) finds its adapter through the client that received the click.
_ADAPTERS: weakref.WeakKeyDictionary[discord.Client, DiscordAdapter] = weakref.WeakKeyDictionary()


def _adapter_for(interaction: discord.Interaction[Any]) -> DiscordAdapter:
    adapter = _ADAPTERS.get(interaction.client)
    if adapter is None:
        raise RuntimeError("no DiscordAdapter is registered on this client (call register_persistent)")
    return adapter


class ResumeButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=RESUME_TEMPLATE):
    """Resume a blocked candidate; the custom id ``resume:<slug>`` is all the state it needs."""

    def __init__(self, slug: str, adapter: DiscordAdapter | None = None) -> None:
        super().__init__(
            discord.ui.Button(label="Resume", style=discord.ButtonStyle.primary, custom_id=f"resume:{slug}")
        )
        self.slug = slug
        self.adapter = adapter

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["slug"], _adapter_for(interaction))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await (self.adapter or _adapter_for(interaction)).on_resume_click(interaction, self.slug)


class LaunchButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=LAUNCH_TEMPLATE):
    """Start a session for an agent. Matches every ``launch:*`` id, so old buttons still answer."""

    def __init__(
        self, key: str, label: str, adapter: DiscordAdapter | None = None, *, row: int | None = None
    ) -> None:
        button: discord.ui.Button[discord.ui.View] = discord.ui.Button(
            label=label, style=discord.ButtonStyle.secondary, custom_id=f"{LAUNCH_PREFIX}{key}"
        )
        super().__init__(button, row=row)
        self.key = key
        self.label = label
        self.adapter = adapter

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        # The old button's label names the agent even when its config entry is gone.
        return cls(match["agent"], getattr(item, "label", None) or match["agent"], _adapter_for(interaction))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await (self.adapter or _adapter_for(interaction)).on_launch_click(interaction, self.key, self.label)
