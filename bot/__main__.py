"""``teleclaude-bot`` / ``python -m bot``: the integrator and its Discord bot in one process.

Reads the config like ``integrator`` does (``--config PATH``, ``$INTEGRATOR_CONFIG``,
``./integrator.toml``) and ``DISCORD_TOKEN`` from the environment; without a token it runs headless.
SIGINT and SIGTERM stop it cleanly (the lease is released) with exit status 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from bot.config import BotOptions, parse_args
from bot.runtime import BotRuntime
from integrator.config import Config, load_config
from integrator.errors import IntegratorError


async def serve(cfg: Config, options: BotOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    token = cfg.discord_token.get_secret_value() if cfg.discord_token is not None else None
    await BotRuntime(cfg, token=token, sync_commands=options.sync_commands).run(stop)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if options.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        cfg = load_config(options.config_path)
        asyncio.run(serve(cfg, options))
    except IntegratorError as err:  # a bad config, an unusable database: one line, the core's status
        print(f"error: {err.message}", file=sys.stderr)
        sys.exit(err.exit_status)


if __name__ == "__main__":
    main()
