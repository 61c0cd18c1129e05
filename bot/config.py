"""The bot's command line: which config to load, how loud to log, whether to sync slash commands.

Everything else comes from ``integrator.toml`` (``[discord]``) and ``DISCORD_TOKEN``, read through
:func:`integrator.config.load_config`, so the bot and ``integrator`` always agree on the config.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from integrator.config import CONFIG_ENV, DEFAULT_CONFIG_NAME


@dataclass(frozen=True)
class BotOptions:
    config_path: str | None = None
    verbose: bool = False
    # Registering the commands with Discord is one bulk PUT; harmless on every start, but it can be
    # turned off when several bots share one application.
    sync_commands: bool = True


def parse_args(argv: Sequence[str] | None = None) -> BotOptions:
    parser = argparse.ArgumentParser(
        prog="teleclaude-bot",
        description="The integrator and its Discord bot in one process. Without DISCORD_TOKEN it runs "
        "headless and prints notifications to the console.",
    )
    parser.add_argument(
        "--config",
        dest="config_path",
        default=None,
        metavar="PATH",
        help=f"path to {DEFAULT_CONFIG_NAME} (default: ${CONFIG_ENV}, then ./{DEFAULT_CONFIG_NAME})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    parser.add_argument(
        "--no-sync", dest="sync_commands", action="store_false", help="do not register /integrate on start"
    )
    args = parser.parse_args(argv)
    return BotOptions(config_path=args.config_path, verbose=args.verbose, sync_commands=args.sync_commands)
