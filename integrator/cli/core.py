"""CLI commands for the core: init, emit, status, queue, events, run, demo."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
