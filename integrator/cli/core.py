"""CLI commands for the core: init, emit, status, queue, events, history, run, pause, unpause."""

from __future__ import annotations

import getpass
import logging
import signal
import socket
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from integrator import limits, preflight, timestamps
from integrator.cli.common import (
    echo_json,
    fail,
    find_config_path,
    get_config,
    handle_errors,
    run_async,
    utf8_option,
)
from integrator.cli.render import candidate_line, notification_line, outcome_line, queue_lines, status_text
from integrator.config import Config, build_config, write_config
from integrator.errors import InvalidInput
from integrator.events import Event, make_event, parse_ndjson, utcnow

if TYPE_CHECKING:
    import sqlite3

    from integrator.service import EmitReport

T = TypeVar("T")


def actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _timestamp(value: str | None) -> datetime:
    if value is None:
        return utcnow()
    try:
        return timestamps.parse(limits.check_utf8(value, "--at"))
    except ValueError as err:
        raise InvalidInput(f"--at: {err}") from None


def _read_batch() -> str:
    """Stdin as text, within the batch size limit; bytes that are not UTF-8 are named, not guessed."""
    raw = sys.stdin.buffer.read(limits.MAX_BATCH_BYTES + 1)
    if len(raw) > limits.MAX_BATCH_BYTES:
        raise InvalidInput(f"stdin: a batch is at most {limits.MAX_BATCH_BYTES} bytes; split it")
    return limits.utf8_text(raw, "stdin")


class AsciiInt(click.ParamType[int]):
    """An integer in ASCII digits: ``int()`` alone would read '٣' (Arabic-Indic three) as 3."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value)
        if not text.isascii() or not text.lstrip("-").isdigit() or len(text) > limits.MAX_INT_DIGITS:
            self.fail(f"{text[:40]!r} is not a whole number in digits 0-9", param, ctx)
        return int(text)


async def _emit(cfg: Config, events: list[Event], wait: bool) -> EmitReport:
    from integrator.service import Integrator

    async with await Integrator.open(cfg) as integ:
        return await integ.emit(events, wait=wait)


def _print_emit(report: EmitReport, as_json: bool) -> None:
    if as_json:
        echo_json(
            {
                "stored": report.stored,
                "duplicates": report.duplicates,
                "check_error": report.check_error,
                "events": [
                    {"type": a.event.type, "outcome": a.outcome, "idempotency_key": a.event.idempotency_key}
                    for a in report.appended
                ],
                "candidates": report.candidates,
            }
        )
        return
    for a in report.appended:
        what = "stored" if a.outcome == "stored" else "duplicate (already stored; nothing changed)"
        click.echo(f"{a.event.type}: {what}")
    if report.check_error:
        click.echo(f"git check deferred: {report.check_error}", err=True)
    for c in report.candidates:
        click.echo(candidate_line(c))


def _emit_one(
    ctx: click.Context,
    event_type: str,
    payload: dict[str, Any],
    time_field: str,
    at: str | None,
    as_json: bool,
) -> None:
    problems = []
    for key, value in payload.items():
        if isinstance(value, str):
            try:
                limits.check_utf8(value, f"--{key}")
            except InvalidInput as err:
                problems.append(err.message)
    if problems:  # named by flag, before validation names the same field a second way
        raise InvalidInput("; ".join(problems))
    try:
        payload[time_field] = _timestamp(at)
    except InvalidInput as err:
        problems.append(err.message)
        payload[time_field] = utcnow()  # a stand-in, so every other bad field is named in the same message
    try:
        event = make_event(event_type, payload)
    except InvalidInput as err:
        problems.append(err.message)
    if problems:
        raise InvalidInput("; ".join(problems))
    cfg = get_config(ctx)
    preflight.local(cfg)
    _print_emit(run_async(_emit(cfg, [event], ctx.obj.get("wait", False))), as_json)


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option(
        "--repo", required=True, type=click.Path(file_okay=False), help="The integrator's git repository."
    )
    @click.option("--remote", default="origin", show_default=True)
    @click.option("--main", "main_branch", default="main", show_default=True)
    @click.option("--db", default="integrator.db", show_default=True, help="SQLite database path.")
    @click.option(
        "--todos", "todos_dir", default="todos", show_default=True, help="Where follow-up todos go."
    )
    @click.option("--mode", type=click.Choice(["shadow", "cutover"]), default="shadow", show_default=True)
    @click.option("--verify", "verify_command", default=None, help="Command run on each merged tree.")
    @click.option("--force", is_flag=True, help="Overwrite an existing integrator.toml.")
    @click.pass_context
    @handle_errors
    def init(
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

    @cli.group(invoke_without_command=True)
    @click.option(
        "--json", "json_input", default=None, metavar="-", help="Read NDJSON events from stdin ('-')."
    )
    @click.option("--json-output", is_flag=True, help="Print the result as JSON.")
    @click.option(
        "--wait",
        is_flag=True,
        help="Run the git readiness check before returning, so the output (and status) has the verdict.",
    )
    @click.pass_context
    @handle_errors
    def emit(ctx: click.Context, json_input: str | None, json_output: bool, wait: bool) -> None:
        """Emit readiness events (one by flags, or a batch of NDJSON on stdin).

        Without --wait it only stores them (no git runs): the runner gives the git verdict.
        """
        ctx.obj = {**(ctx.obj or {}), "json_output": json_output, "wait": wait}
        if ctx.invoked_subcommand is not None:
            return
        if json_input != "-":
            fail("emit needs an event type (review_approved, finalize_ready, branch_pushed) or --json -", 2)
        cfg = get_config(ctx)
        events = parse_ndjson(_read_batch())
        if not events:
            fail("no events on stdin", 2)
        preflight.local(cfg)
        _print_emit(run_async(_emit(cfg, events, wait)), json_output)

    @emit.command("review_approved")
    @click.option("--slug", required=True)
    @click.option("--sha", required=True)
    @click.option("--reviewer", required=True)
    @click.option("--round", "review_round", required=True, type=AsciiInt())
    @click.option("--at", default=None, help="approved_at (ISO-8601 with timezone; default now).")
    @click.pass_context
    @handle_errors
    def review_approved(
        ctx: click.Context, slug: str, sha: str, reviewer: str, review_round: int, at: str | None
    ) -> None:
        _emit_one(
            ctx,
            "review_approved",
            {"slug": slug, "sha": sha, "reviewer": reviewer, "review_round": review_round},
            "approved_at",
            at,
            ctx.obj.get("json_output", False),
        )

    @emit.command("finalize_ready")
    @click.option("--slug", required=True)
    @click.option("--branch", required=True)
    @click.option("--sha", required=True)
    @click.option("--worker", required=True)
    @click.option("--at", default=None, help="ready_at (ISO-8601 with timezone; default now).")
    @click.pass_context
    @handle_errors
    def finalize_ready(
        ctx: click.Context, slug: str, branch: str, sha: str, worker: str, at: str | None
    ) -> None:
        _emit_one(
            ctx,
            "finalize_ready",
            {"slug": slug, "branch": branch, "sha": sha, "worker": worker},
            "ready_at",
            at,
            ctx.obj.get("json_output", False),
        )

    @emit.command("branch_pushed")
    @click.option("--branch", required=True)
    @click.option("--sha", required=True)
    @click.option("--remote", default=None, help="The remote pushed to (default: the configured remote).")
    @click.option("--pusher", default=None)
    @click.option("--at", default=None, help="pushed_at (ISO-8601 with timezone; default now).")
    @click.pass_context
    @handle_errors
    def branch_pushed(
        ctx: click.Context, branch: str, sha: str, remote: str | None, pusher: str | None, at: str | None
    ) -> None:
        payload: dict[str, Any] = {"branch": branch, "sha": sha, "remote": remote or get_config(ctx).remote}
        if pusher is not None:
            payload["pusher"] = pusher
        _emit_one(ctx, "branch_pushed", payload, "pushed_at", at, ctx.obj.get("json_output", False))

    @cli.command()
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    @handle_errors
    def status(ctx: click.Context, as_json: bool) -> None:
        """Mode, pause, lease, queue, candidates with their reasons, recent outcomes."""
        from integrator import git

        cfg = get_config(ctx)
        # A repository deleted or broken since `init` must be said, not hidden behind a calm status.
        git.check_repository(cfg.repo, cfg.remote)
        from integrator import views

        sandbox = views.verify_sandbox(cfg)
        data = read_view(
            cfg, lambda c: {**views.status(c, cfg, utcnow()), "verify_sandbox": sandbox}, "status"
        )
        echo_json(data) if as_json else click.echo(status_text(data))

    @cli.command("queue")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    @handle_errors
    def queue_cmd(ctx: click.Context, as_json: bool) -> None:
        """The queue in integration order."""
        from integrator import views

        data = read_view(get_config(ctx), views.queue_view, "queued")
        echo_json(data) if as_json else click.echo("\n".join(queue_lines(data)))

    @cli.command()
    @click.option("--json", "as_json", is_flag=True)
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
    @click.pass_context
    @handle_errors
    def events(ctx: click.Context, as_json: bool, limit: int) -> None:
        """The newest events of the log."""
        data = run_async(call(get_config(ctx), "events", limit))
        if as_json:
            echo_json(data)
            return
        for e in data:
            p = e["payload"]
            ident = " ".join(str(p[k]) for k in ("slug", "branch") if k in p)
            click.echo(
                f"{e['seq']:>6} {e['received_at']} {e['type']:<22} {ident} {str(p.get('sha', ''))[:10]}"
            )

    @cli.command()
    @click.option("--json", "as_json", is_flag=True)
    @click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
    @click.pass_context
    @handle_errors
    def history(ctx: click.Context, as_json: bool, limit: int) -> None:
        """Recent outcomes: completed, blocked, superseded."""
        data = run_async(call(get_config(ctx), "history", limit))
        if as_json:
            echo_json(data)
        else:
            for e in data:
                click.echo(f"{e['received_at']}  " + outcome_line({"type": e["type"], **e["payload"]}))

    @cli.command()
    @click.option("--reason", required=True, callback=utf8_option)
    @click.pass_context
    @handle_errors
    def pause(ctx: click.Context, reason: str) -> None:
        """Finish the candidate in flight, then hold the queue."""
        record = run_async(call(get_config(ctx), "pause", reason, actor()))
        click.echo(f"paused by {record['by']} at {record['at']}: {record['reason']}")

    @cli.command()
    @click.pass_context
    @handle_errors
    def unpause(ctx: click.Context) -> None:
        """Let the integrator take candidates again."""
        changed = run_async(call(get_config(ctx), "unpause", actor()))
        click.echo("unpaused" if changed else "was not paused")

    @cli.command()
    @click.option("--once", is_flag=True, help="Exit when the queue is empty.")
    @click.option("--shadow", "force_shadow", is_flag=True, help="Never push, whatever the mode says.")
    @click.option("-v", "--verbose", is_flag=True)
    @click.pass_context
    @handle_errors
    def run(ctx: click.Context, once: bool, force_shadow: bool, verbose: bool) -> None:
        """Take the lease integration/main and drain the queue until stopped."""
        cfg = get_config(ctx)
        preflight.full(cfg)
        logging.basicConfig(
            level=logging.INFO if verbose else logging.WARNING,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        run_async(run_integrator(cfg, once=once, force_shadow=force_shadow))


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
        return run_async(call(cfg, method))  # type: ignore[no-any-return]


async def _create_db(cfg: Config) -> None:
    from integrator.service import Integrator

    async with await Integrator.open(cfg):
        pass


async def call(cfg: Config, method: str, *args: Any) -> Any:
    from integrator.service import Integrator

    async with await Integrator.open(cfg) as integ:
        return await getattr(integ, method)(*args)


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
            click.echo(notification_line(note.as_dict()))

        sink = (
            asyncio.create_task(deliver_forever(integ.store, "console", show, sink_stop)) if console else None
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
