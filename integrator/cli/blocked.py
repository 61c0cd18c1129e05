"""CLI commands that steer one candidate: blocked, resume, withdraw."""

from __future__ import annotations

import click

from integrator.cli.common import actor, call, echo_json, get_config, handle_errors, run_async, utf8_option
from integrator.cli.render import short


@click.command("blocked")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def blocked_cmd(ctx: click.Context, as_json: bool) -> None:
    """Blocked candidates with their evidence summary and follow-up todo."""
    data = run_async(call(get_config(ctx), "blocked"))
    if as_json:
        echo_json(data)
        return
    if not data:
        click.echo("nothing is blocked")
    for b in data:
        click.echo(f"{b.slug} {short(b.sha)} on {b.branch}: {b.reason_code} (at {b.blocked_at})")
        for path in b.conflicted_paths[:10]:
            click.echo(f"  conflict: {path}")
        click.echo(f"  next: {b.next_action}")
        if b.follow_up:
            fu = b.follow_up
            click.echo(f"  follow-up: {fu.path} ({fu.status}, blocked {fu.blocked_count}x)")


@click.command("resume")
@click.argument("slug", callback=utf8_option)
@click.pass_context
@handle_errors
def resume(ctx: click.Context, slug: str) -> None:
    """Re-queue a blocked candidate if what blocked it changed; otherwise say why not (exit 1)."""
    result = run_async(call(get_config(ctx), "resume", slug, actor()))
    click.echo(f"resumed {result.slug} {short(result.sha)}: {result.why}; queue position {result.position}")


@click.command("withdraw")
@click.argument("slug")
@click.option("--reason", required=True, help="Why (recorded, and shown in the notification).")
@click.pass_context
@handle_errors
def withdraw(ctx: click.Context, slug: str, reason: str) -> None:
    """Take the slug's candidate off the queue for good; one in flight stops before its push."""
    result = run_async(call(get_config(ctx), "withdraw", slug, actor(), reason))
    if result.state == "stopping":
        click.echo(
            f"withdrawing {result.slug} {short(result.sha)}: it is in flight and stops before its push"
        )
    else:
        click.echo(f"withdrew {result.slug} {short(result.sha)} (was {result.was}): {result.reason}")


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
    for command in (blocked_cmd, resume, withdraw):
        cli.add_command(command)
