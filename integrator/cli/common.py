"""Shared pieces of the CLI: the root group, config loading, error mapping, output helpers."""

from __future__ import annotations

import functools
import getpass
import importlib
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, ParamSpec, TypeVar

import click
from pydantic import BaseModel

from integrator.config import Config, find_config_path, load_config
from integrator.errors import IntegratorError

P = ParamSpec("P")
T = TypeVar("T")


class LazyGroup(click.Group):
    """Imports an area's module (and runs its ``register``) only when one of its commands is used."""

    LAZY: ClassVar[dict[str, str]] = {
        "blocked": "blocked",
        "resume": "blocked",
        "withdraw": "blocked",
        "shadow-report": "mode",
        "cutover": "mode",
        "rollback": "mode",
        "hooks": "authority",
        "remote": "authority",
        "authority": "authority",
        "rollout": "rollout",
        "demo": "demo",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.LAZY))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.LAZY:
            module = importlib.import_module(f"integrator.cli.{self.LAZY[cmd_name]}")
            module.register(self)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Path to integrator.toml (default: $INTEGRATOR_CONFIG, then ./integrator.toml).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """The singleton integrator: the only writer of main."""
    ctx.obj = {"config_path": config_path}


def get_config(ctx: click.Context) -> Config:
    root = ctx.find_root()
    cached: Config | None = root.obj.get("config")
    if cached is None:
        cached = load_config(root.obj.get("config_path"))
        root.obj["config"] = cached
    return cached


def fail(message: str, status: int) -> None:
    if status == 2:  # bad input is one line, whatever text a lower layer put into the message
        message = " ".join(message.split("\n"))
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


def utf8_option(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Click callback: an argument holding bytes that are not UTF-8 is refused, naming the argument."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise click.BadParameter("not valid UTF-8") from None
    return value


def handle_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Map core errors to a one-line message and the error's exit status."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except IntegratorError as err:
            fail(err.message, err.exit_status)
            raise AssertionError("unreachable") from None

    return wrapper


def run_async(coro: Awaitable[T]) -> T:
    import asyncio  # here: the read-only commands never start an event loop

    async def _wrap() -> T:
        return await coro

    return asyncio.run(_wrap())


def actor() -> str:
    """Who ran the command, as audit records name them: user@host."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


async def call(cfg: Config, method: str, *args: Any) -> Any:
    """``Integrator.<method>(*args)`` on a store opened (and closed) for this one call."""
    from integrator.service import Integrator

    async with await Integrator.open(cfg) as integ:
        return await getattr(integ, method)(*args)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=None, sort_keys=True, default=_jsonable))


def _jsonable(value: Any) -> Any:
    """The service's models print as their fields (the JSON scripts rely on); anything else as text."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


__all__ = [
    "actor",
    "call",
    "cli",
    "echo_json",
    "fail",
    "find_config_path",
    "get_config",
    "handle_errors",
    "run_async",
    "utf8_option",
]
