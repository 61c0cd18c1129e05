"""CLI commands for shadow, parity and the mode: shadow-report, cutover, rollback."""

from __future__ import annotations

from typing import Any

import click

from integrator import preflight
from integrator.cli.common import actor, echo_json, get_config, handle_errors, run_async, utf8_option
from integrator.config import Config
from integrator.models import ParityReport
from integrator.service import Integrator


def report_text(r: ParityReport) -> str:
    gate = r.gate
    lines = [
        f"predicted: {r.predicted}  decided: {r.decided}  agreements: {r.agreements}"
        f"  agreement: {r.agreement_rate:.1%}  undecided: {r.undecided}",
    ]
    if r.disagreements:
        lines.append("disagreements:")
        for d in r.disagreements:
            lines.append(
                f"  {d.slug} {d.sha[:10]}: predicted {d.prediction}, actually {d.actual}"
                + (f" (differs in {', '.join(d.changed_paths[:10])})" if d.changed_paths else "")
            )
    if r.stuck:
        lines.append("stuck longer than the stall limit:")
        lines += [f"  {s.slug} {s.sha[:10]} predicted at {s.predicted_at}" for s in r.stuck]
    if r.errors:
        lines.append(f"integrator errors in the window: {len(r.errors)}")
        lines += [f"  {e['at']} {e['kind']}: {e['message']}" for e in r.errors[-5:]]
    lines.append(f"cutover gate: {gate.verdict.upper()}")
    lines += [f"  - {reason}" for reason in gate.reasons]
    return "\n".join(lines)


async def _with(cfg: Config, action: str, **kwargs: Any) -> Any:
    from integrator import cutover

    async with await Integrator.open(cfg) as integ:
        if action == "report":
            return await integ.shadow_report()
        if action == "cutover":
            return await cutover.cutover(integ, **kwargs)
        return await cutover.rollback(integ, **kwargs)


@click.command("shadow-report")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def shadow_report(ctx: click.Context, as_json: bool) -> None:
    """Parity of shadow predictions with what really landed, and the cutover gate's verdict."""
    data = run_async(_with(get_config(ctx), "report"))
    echo_json(data) if as_json else click.echo(report_text(data))


@click.command("cutover")
@click.option("--reason", default="parity gate passed", show_default=True, callback=utf8_option)
@click.pass_context
@handle_errors
def cutover_cmd(ctx: click.Context, reason: str) -> None:
    """Make the integrator the only writer of main (refused unless the gate passes and hooks are verified)."""
    cfg = get_config(ctx)
    preflight.full(cfg)
    record = run_async(_with(cfg, "cutover", by=actor(), reason=reason))
    click.echo(f"mode: cutover since {record.since} by {record.by}: {record.reason}")


@click.command("rollback")
@click.option("--reason", required=True, callback=utf8_option)
@click.pass_context
@handle_errors
def rollback_cmd(ctx: click.Context, reason: str) -> None:
    """Return to shadow: legacy pushes to main are allowed again."""
    record = run_async(_with(get_config(ctx), "rollback", by=actor(), reason=reason))
    click.echo(f"mode: shadow since {record.since} by {record.by}: {record.reason}")


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
    for command in (shadow_report, cutover_cmd, rollback_cmd):
        cli.add_command(command)
