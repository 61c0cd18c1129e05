"""CLI commands for the blocked area."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
