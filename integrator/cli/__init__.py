"""The ``integrator`` command line: the only place in the core that prints.

Each area keeps its commands in its own module. The core commands (status, emit, run, …) load
eagerly; the other areas load when one of their commands is called, so ``integrator status``
does not pay for hooks, Discord-free but heavy imports (YAML, GitPython) or the demo.
"""

from __future__ import annotations

import sys

import click

from integrator.cli import core
from integrator.cli.common import cli

core.register(cli)


def main() -> None:
    # Click's own usage errors are three lines (usage, hint, error); bad input is one line, exit 2.
    try:
        status = cli.main(prog_name="integrator", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as err:
        click.echo(f"error: {' '.join(err.format_message().splitlines())}", err=True)
        sys.exit(err.exit_code)
    sys.exit(status if isinstance(status, int) else 0)
