"""The ``integrator`` command line: the only place in the core that prints.

Each area keeps its commands in its own module; this package assembles them into one group.
Errors from the core map to exit statuses here: invalid input 2, refusals 1.
"""

from __future__ import annotations

from integrator.cli import authority, blocked, core, demo, mode, rollout
from integrator.cli.common import cli


def _register() -> None:
    for module in (core, blocked, mode, authority, rollout, demo):
        module.register(cli)


_register()


def main() -> None:
    cli(prog_name="integrator")
