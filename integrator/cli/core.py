"""CLI commands for the core: init, status, queue, events, history, run, pause, unpause (emit: cli/emit.py)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from integrator import logs, preflight
from integrator.cli.common import (
    actor,
    call,
    echo_json,
    fail,
    find_config_path,
    get_config,
    handle_errors,
    run_async,
    utf8_option,
)
from integrator.cli.emit import emit_group
from integrator.cli.render import notification_line, outcome_line, queue_lines, status_text
from integrator.config import Config, build_config, write_config
from integrator.events import utcnow

if TYPE_CHECKING:
    import sqlite3

T = TypeVar("T")


@click.command("init")
@click.option(
    "--repo", required=True, type=click.Path(file_okay=False), help="The integrator's git repository."
)
@click.option("--remote", default="origin", show_default=True)
@click.option("--main", "main_branch", default="main", show_default=True)
@click.option("--db", default="integrator.db", show_default=True, help="SQLite database path.")
@click.option("--todos", "todos_dir", default="todos", show_default=True, help="Where follow-up todos go.")
@click.option("--mode", type=click.Choice(["shadow", "cutover"]), default="shadow", show_default=True)
@click.option("--verify", "verify_command", default=None, help="Command run on each merged tree.")
@click.option("--force", is_flag=True, help="Overwrite an existing integrator.toml.")
@click.pass_context
@handle_errors
def init_cmd(
    ctx: click.Context,
    repo: str,
    remote: str,
    main_branch: str,
    db: str,
    todos_dir: str,
    mode: str,
    verify_command: str | None,
    force: bool,
) -> None:
    """Write integrator.toml for a repository and create the database."""
    from integrator import git

    path = find_config_path(ctx.find_root().obj.get("config_path"))
    if path.exists() and not force:
        fail(f"{path} already exists (use --force to overwrite)", 2)
    repo_path = Path(repo).resolve()
    git.validate_repository(repo_path, remote)
    data: dict[str, Any] = {
        "repo": str(repo_path),
        "remote": remote,
        "main_branch": main_branch,
        "db": db,
        "todos_dir": todos_dir,
        "mode": mode,
    }
    if verify_command:
        data["verify_command"] = verify_command
    cfg = build_config(data, path)
    run_async(_create_db(cfg))
    write_config(cfg, path)
    click.echo(f"wrote {path} (mode {mode}, repo {repo_path}, remote {remote}, db {cfg.db})")


@click.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Mode, pause, lease, queue, candidates with their reasons, recent outcomes."""
    from integrator import git, views

    cfg = get_config(ctx)
    # A repository deleted or broken since `init` must be said, not hidden behind a calm status.
    git.check_repository(cfg.repo, cfg.remote)
    sandbox = views.verify_sandbox(cfg)
    data = read_view(cfg, lambda c: views.status(c, cfg, utcnow(), sandbox), "status")
    echo_json(data) if as_json else click.echo(status_text(data))


@click.command("queue")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def queue_cmd(ctx: click.Context, as_json: bool) -> None:
    """The queue in integration order."""
    from integrator import views

    data = read_view(get_config(ctx), views.queue_view, "queued")
    echo_json(data) if as_json else click.echo("\n".join(queue_lines(data)))


@click.command("events")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
@handle_errors
def events_cmd(ctx: click.Context, as_json: bool, limit: int) -> None:
    """The newest events of the log."""
    data = run_async(call(get_config(ctx), "events", limit))
    if as_json:
        echo_json(data)
        return
    for e in data:
        p = e.payload
        ident = " ".join(str(p[k]) for k in ("slug", "branch") if k in p)
        click.echo(f"{e.seq:>6} {e.received_at} {e.type:<22} {ident} {str(p.get('sha', ''))[:10]}")


@click.command("history")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_context
@handle_errors
def history_cmd(ctx: click.Context, as_json: bool, limit: int) -> None:
    """Recent outcomes: completed, blocked, superseded."""
    data = run_async(call(get_config(ctx), "history", limit))
    if as_json:
        echo_json(data)
        return
    for e in data:
        click.echo(f"{e.received_at}  " + outcome_line(e.flat()))


@click.command("pause")
@click.option("--reason", required=True, callback=utf8_option)
@click.pass_context
@handle_errors
def pause_cmd(ctx: click.Context, reason: str) -> None:
    """Finish the candidate in flight, then hold the queue."""
    record = run_async(call(get_config(ctx), "pause", reason, actor()))
    click.echo(f"paused by {record.by} at {record.at}: {record.reason}")


@click.command("unpause")
@click.pass_context
@handle_errors
def unpause_cmd(ctx: click.Context) -> None:
    """Let the integrator take candidates again."""
    changed = run_async(call(get_config(ctx), "unpause", actor()))
    click.echo("unpaused" if changed else "was not paused")


@click.command("run")
@click.option("--once", is_flag=True, help="Exit when the queue is empty.")
@click.option("--shadow", "force_shadow", is_flag=True, help="Never push, whatever the mode says.")
@click.option("-v", "--verbose", is_flag=True)
@click.pass_context
@handle_errors
def run_cmd(ctx: click.Context, once: bool, force_shadow: bool, verbose: bool) -> None:
    """Take the lease integration/main and drain the queue until stopped."""
    cfg = get_config(ctx)
    preflight.full(cfg)
    logs.configure(logging.INFO if verbose else logging.WARNING)
    run_async(run_integrator(cfg, once=once, force_shadow=force_shadow))


COMMANDS = (
    init_cmd,
    emit_group,
    status_cmd,
    queue_cmd,
    events_cmd,
    history_cmd,
    pause_cmd,
    unpause_cmd,
    run_cmd,
)


def register(cli: click.Group) -> None:
    """Attach the core commands (loaded eagerly) to the root group."""
    for command in COMMANDS:
        cli.add_command(command)


class _Stale(Exception):
    """The database's schema is older than this integrator's: the async store migrates it first."""


def read_view(cfg: Config, view: Callable[[sqlite3.Connection], T], method: str) -> T:
    """``view`` on a read-only snapshot: no async driver, no event loop (the commands agents call most).

    A database that is absent, older or unusable goes through the store instead (``Integrator.<method>``),
    which creates or migrates it, or says what is wrong with it.
    """
    from integrator import dbfile, readonly
    from integrator.store import SCHEMA_VERSION

    def current(conn: sqlite3.Connection) -> T:
        # Not ours, or not marked yet: the store refuses the one and marks the other.
        if (
            int(conn.execute("PRAGMA user_version").fetchone()[0]) != SCHEMA_VERSION
            or int(conn.execute("PRAGMA application_id").fetchone()[0]) != dbfile.APPLICATION_ID
        ):
            raise _Stale
        return view(conn)

    try:
        return readonly.read_store(cfg.db, current)
    except (readonly.StoreUnavailable, _Stale):
        fallback: T = run_async(call(cfg, method))
        return fallback


async def _create_db(cfg: Config) -> None:
    from integrator.service import Integrator

    async with await Integrator.open(cfg):
        pass


async def run_integrator(cfg: Config, *, once: bool, force_shadow: bool, console: bool = True) -> None:
    """The ``run`` command: runner + console notifications; SIGINT/SIGTERM stop it cleanly."""
    import asyncio

    from integrator.delivery import deliver_forever
    from integrator.outbox import Notification
    from integrator.runner import Runner
    from integrator.service import Integrator
    from integrator.workflow import Fault

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with await Integrator.open(cfg) as integ:
        runner = Runner(cfg, integ.store, force_shadow=force_shadow)
        sink_stop = asyncio.Event()

        async def show(note: Notification) -> None:
            click.echo(notification_line(note))

        sink = (
            asyncio.create_task(deliver_forever(integ.store, "console", show, sink_stop, clock=integ.clock))
            if console
            else None
        )
        try:
            await runner.run(stop, once=once)
        finally:
            sink_stop.set()
            if sink is not None:
                await sink
        if once and runner.faults_in_a_row:
            raise Fault(
                f"gave up after {runner.faults_in_a_row} faults in a row ({runner.last_fault}); "
                "the candidates stay queued: fix the cause and run again"
            )
