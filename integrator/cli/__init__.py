"""The ``integrator`` command line: the only place in the core that prints.

Each area keeps its commands in its own module. The core commands (status, emit, run, …) load
eagerly; the other areas load when one of their commands is called, so ``integrator status``
does not pay for hooks, Discord-free but heavy imports (YAML, GitPython) or the demo.
"""

from __future__ import annotations

from integrator.cli import core
from integrator.cli.common import cli

core.register(cli)


def main() -> None:
    cli(prog_name="integrator")
