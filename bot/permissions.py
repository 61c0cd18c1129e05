"""What the bot needs from a Discord server, in one place: the invite link grants exactly this, and the
start-up check says in one line what the channel lacks (otherwise a 403 first shows up as a failed
send, minutes later).
"""

from __future__ import annotations

import base64
import binascii
import logging

import discord

log = logging.getLogger(__name__)

SCOPES = ("bot", "applications.commands")
# Permission attribute -> the name Discord's settings show. See the channel, post notifications,
# their embeds and the evidence files.
NEEDED = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
    "attach_files": "Attach Files",
}


def needed() -> discord.Permissions:
    return discord.Permissions(**dict.fromkeys(NEEDED, True))


def invite_url(application_id: int, guild_id: int | None = None) -> str:
    """The OAuth2 link that adds the bot with :data:`SCOPES` and exactly :func:`needed`."""
    guild = discord.Object(id=guild_id) if guild_id is not None else discord.utils.MISSING
    return discord.utils.oauth_url(
        application_id,
        permissions=needed(),
        guild=guild,
        scopes=SCOPES,
        disable_guild_select=guild_id is not None,
    )


def application_id_from_token(token: str) -> int | None:
    """A bot token's first part is its user id in base64; for a bot that id is the application's."""
    head = token.split(".", 1)[0]
    try:
        text = base64.b64decode(head + "=" * (-len(head) % 4), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return int(text) if text.isdigit() else None


def missing(permissions: discord.Permissions) -> list[str]:
    return [name for attr, name in NEEDED.items() if not getattr(permissions, attr)]


async def check_channel(client: discord.Client, channel_id: int) -> str | None:
    """One line naming what is wrong with the notification channel, or None when all is there."""
    channel = client.get_channel(channel_id)
    if channel is None:
        try:
            channel = await client.fetch_channel(channel_id)
        except (discord.NotFound, discord.Forbidden):
            return f"channel {channel_id} does not exist or the bot cannot see it (check discord.channel_id)"
    if not isinstance(channel, discord.abc.GuildChannel):
        return f"channel {channel_id} is not a server text channel"
    me = channel.guild.me
    if me is None and client.user is not None:
        try:
            me = await channel.guild.fetch_member(client.user.id)
        except discord.HTTPException:
            return f"the bot is not a member of the server of channel {channel_id}"
    if me is None:
        return f"the bot is not a member of the server of channel {channel_id}"
    lacking = missing(channel.permissions_for(me))
    if lacking:
        return f"the bot lacks {', '.join(lacking)} in channel #{channel.name} ({channel_id})"
    return None
