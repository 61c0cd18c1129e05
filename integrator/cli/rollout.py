"""CLI commands for the rollout area."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
