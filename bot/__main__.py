"""``teleclaude-bot`` / ``python -m bot``: the integrator and its Discord bot in one process.

Reads the config like ``integrator`` does (``--config PATH``, ``$INTEGRATOR_CONFIG``,
``./integrator.toml``) and ``DISCORD_TOKEN`` from the environment; without a token it runs headless.
SIGINT and SIGTERM stop it cleanly (the lease is released) with exit status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

import click

from bot.runtime import BotRuntime
from integrator import logs, preflight
from integrator.config import CONFIG_ENV, DEFAULT_CONFIG_NAME, Config, discord_token, load_config
from integrator.errors import IntegratorError


async def serve(cfg: Config, *, sync_commands: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    token = cfg.discord_token.get_secret_value() if cfg.discord_token is not None else None
    await BotRuntime(cfg, token=token, sync_commands=sync_commands).run(stop)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    default=None,
    metavar="PATH",
    help=f"Path to {DEFAULT_CONFIG_NAME} (default: ${CONFIG_ENV}, then ./{DEFAULT_CONFIG_NAME}).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
# Registering the commands with Discord is one bulk PUT; harmless on every start, but it can be
# turned off when several bots share one application.
@click.option("--no-sync", "no_sync", is_flag=True, help="Do not register /integrate on start.")
@click.option(
    "--invite-url",
    "invite",
    is_flag=True,
    help="Print the link that adds the bot with exactly the permissions it needs, and exit.",
)
@click.option(
    "--application-id",
    "application_id",
    type=click.IntRange(1, 2**64 - 1),
    default=None,
    help="For --invite-url (default: read from DISCORD_TOKEN).",
)
def cli(
    config_path: str | None, verbose: bool, no_sync: bool, invite: bool, application_id: int | None
) -> None:
    """The integrator and its Discord bot in one process.

    Without DISCORD_TOKEN it runs headless and prints notifications to the console.
    """
    if invite:
        print_invite(config_path, application_id)
        return
    logs.configure(logging.DEBUG if verbose else logging.INFO)
    try:
        cfg = load_config(config_path)
        # Before anything starts: a bad config is exit 2 now, not a supervisor retrying it forever.
        preflight.full(cfg)
        asyncio.run(serve(cfg, sync_commands=not no_sync))
    except IntegratorError as err:  # a bad config, an unusable database: one line, the core's status
        click.echo(f"error: {err.message}", err=True)
        sys.exit(err.exit_status)


def print_invite(config_path: str | None, application_id: int | None) -> None:
    from bot import permissions

    if application_id is None:
        try:
            token = discord_token()
        except IntegratorError as err:
            click.echo(f"error: {err.message}", err=True)
            sys.exit(err.exit_status)
        application_id = permissions.application_id_from_token(token.get_secret_value()) if token else None
    if application_id is None:
        click.echo("error: --invite-url needs --application-id ID or DISCORD_TOKEN", err=True)
        sys.exit(2)
    guild_id = None
    with contextlib.suppress(IntegratorError):  # the link works without a config; with one it preselects
        guild_id = load_config(config_path).discord.guild_id
    click.echo(permissions.invite_url(application_id, guild_id))


def main() -> None:
    cli(prog_name="teleclaude-bot")


if __name__ == "__main__":
    main()
