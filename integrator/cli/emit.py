"""``integrator emit``: readiness events by flags (one per subcommand) or as NDJSON on stdin."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from integrator import limits, preflight, timestamps
from integrator.cli.common import echo_json, fail, get_config, handle_errors, run_async
from integrator.cli.render import candidate_line
from integrator.config import Config
from integrator.errors import InvalidInput
from integrator.events import Event, make_event, parse_ndjson, utcnow

if TYPE_CHECKING:
    from integrator.service import EmitReport


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


def _flag_problems(payload: dict[str, Any]) -> list[str]:
    problems = []
    for key, value in payload.items():
        if isinstance(value, str):
            try:
                limits.check_utf8(value, f"--{key}")
            except InvalidInput as err:
                problems.append(err.message)
    return problems


def _emit_one(
    ctx: click.Context, event_type: str, payload: dict[str, Any], time_field: str, at: str | None
) -> None:
    problems = _flag_problems(payload)
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
    _print_emit(run_async(_emit(cfg, [event], ctx.obj.get("wait", False))), ctx.obj.get("json_output", False))


@click.group("emit", invoke_without_command=True)
@click.option("--json", "json_input", default=None, metavar="-", help="Read NDJSON events from stdin ('-').")
@click.option("--json-output", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--wait",
    is_flag=True,
    help="Run the git readiness check before returning, so the output (and status) has the verdict.",
)
@click.pass_context
@handle_errors
def emit_group(ctx: click.Context, json_input: str | None, json_output: bool, wait: bool) -> None:
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


@emit_group.command("review_approved")
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
    payload: dict[str, Any] = {"slug": slug, "sha": sha, "reviewer": reviewer, "review_round": review_round}
    _emit_one(ctx, "review_approved", payload, "approved_at", at)


@emit_group.command("finalize_ready")
@click.option("--slug", required=True)
@click.option("--branch", required=True)
@click.option("--sha", required=True)
@click.option("--worker", required=True)
@click.option("--at", default=None, help="ready_at (ISO-8601 with timezone; default now).")
@click.pass_context
@handle_errors
def finalize_ready(ctx: click.Context, slug: str, branch: str, sha: str, worker: str, at: str | None) -> None:
    payload: dict[str, Any] = {"slug": slug, "branch": branch, "sha": sha, "worker": worker}
    _emit_one(ctx, "finalize_ready", payload, "ready_at", at)


@emit_group.command("branch_pushed")
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
    _emit_one(ctx, "branch_pushed", payload, "pushed_at", at)
