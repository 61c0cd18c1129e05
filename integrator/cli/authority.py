"""CLI commands for the authority area: ``hooks install|ingest``, ``remote serve``, ``authority verify``."""

from __future__ import annotations

import signal
import sys

import click

from integrator import preflight, remote_serve
from integrator.authority import verify as bypass
from integrator.authority.hooks import HOOK_MARKER, InstallReport, install_hooks
from integrator.authority.remote import MODES, RemotePaths, check_bare
from integrator.authority.spool import ingest_detached
from integrator.cli.common import echo_json, fail, get_config, handle_errors

_OK = {True: "yes", False: "NO"}


def _print_install(report: InstallReport) -> None:
    if not report.changes:
        click.echo(f"hooks already installed in {report.bare}; nothing changed (mode: {report.mode})")
        return
    click.echo(f"hooks installed in {report.bare} (mode: {report.mode}):")
    for change in report.changes:
        click.echo(f"  - {change}")
    for backup in report.backups:
        click.echo(f"  - kept the previous hook as {backup}")
    click.echo(
        "A path remote is a guard against mistakes, not a boundary: serve it with "
        "`integrator remote serve`, then run `integrator authority verify --remote URL`."
    )


def _print_verify(report: bypass.VerifyReport) -> None:
    t = report.transport
    click.echo(f"remote: {t.shown} ({t.scheme}, {t.kind} transport)")
    click.echo(f"mode:   {report.mode} ({report.mode_source})")
    click.echo(f"main:   {report.main} (restored after the probes)")
    click.echo(t.describe())
    click.echo("")
    rows = [("variant", "expected", "actual", "ok")]
    rows += [(r.variant, r.expected, r.actual, _OK[r.ok]) for r in report.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    notes = [r for r in report.rows if r.note]
    if notes:
        click.echo("\nnotes:")
        for r in notes:
            click.echo(f"  {r.variant}: {r.note}")
    verdict = "PASS" if report.ok else f"FAIL ({len(report.failures)} variant(s) behaved unexpectedly)"
    click.echo(f"\nresult: {verdict}")


def _wait_for_stop(served: remote_serve.ServedRemote) -> None:
    # Blocked before waiting so a signal arriving between checks is queued, not lost.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        while served.alive():
            if signal.sigtimedwait(stop_signals, 1.0) is not None:
                return
        fail(f"git daemon exited unexpectedly (status {served.process.returncode})", 1)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)


@click.group("hooks")
def hooks() -> None:
    """Install the remote's pre-receive/post-receive hooks and ingest what they spool."""


@hooks.command("install")
@click.option("--remote", "remote", required=True, help="Path to the bare repository workers push to.")
@click.option("--force", is_flag=True, help="Replace foreign hooks (kept as backups).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@handle_errors
def install(ctx: click.Context, remote: str, force: bool, as_json: bool) -> None:
    """Install the hooks, pin core.hooksPath, and place the integrator's credential (idempotent)."""
    cfg = get_config(ctx)
    preflight.full(cfg)
    report = install_hooks(cfg, remote, force=force)
    if as_json:
        echo_json(report.as_dict())
    else:
        _print_install(report)


@hooks.command("ingest")
@click.option("--remote", "remote", required=True, help="Path to the bare repository.")
@click.option("--quiet", is_flag=True, help="Print nothing unless something is wrong (used by the hook).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--deadline",
    type=click.IntRange(1, 3600),
    default=None,
    help="Kill this process after SECONDS, whatever it is waiting on (used by the hook).",
)
@click.pass_context
@handle_errors
def ingest(ctx: click.Context, remote: str, quiet: bool, as_json: bool, deadline: int | None) -> None:
    """Turn the post-receive spool into branch_pushed events (safe to run concurrently)."""
    if deadline is not None:
        # A detached ingestion nobody watches must not live forever (a stuck database, a
        # thread that keeps the interpreter from exiting); SIGALRM's default action ends it.
        signal.alarm(deadline)
    report = ingest_detached(get_config(ctx), remote)
    for reason in report.skipped:
        click.echo(f"skipped: {reason}", err=True)
    if as_json:
        echo_json(report.as_dict())
    elif not quiet:
        click.echo(f"ingested {report.files} spool file(s): {report.events} event(s), {report.stored} new")


@click.group("remote")
def remote_group() -> None:
    """Serve the bare repository over a server transport."""


@remote_group.command("serve")
@click.option("--remote", "remote", required=True, help="Path to the bare repository.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: a free one).")
@handle_errors
def serve(remote: str, port: int | None) -> None:
    """Serve the bare repository with git daemon on 127.0.0.1 until SIGINT/SIGTERM."""
    bare = check_bare(remote)
    hook = RemotePaths(bare).hooks / "pre-receive"
    if not (hook.is_file() and HOOK_MARKER in hook.read_text(errors="replace")):
        click.echo(f"warning: no integrator hooks in {bare}; run `integrator hooks install` first", err=True)
    served = remote_serve.start(bare, port=port, log=sys.stderr.buffer)
    try:
        click.echo(served.url)
        sys.stdout.flush()
        click.echo(f"serving {bare} on loopback only; stop with Ctrl-C or SIGTERM", err=True)
        _wait_for_stop(served)
    finally:
        served.stop()


@click.group("authority")
def authority_group() -> None:
    """Check that only the integrator can push main."""


@authority_group.command("verify")
@click.option(
    "--remote", "remote", required=True, help="Path or URL of the remote (path, file://, git://, ...)."
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default=None,
    help="Expected mode when the remote's mode file cannot be read (remote URLs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@handle_errors
def verify(ctx: click.Context, remote: str, mode: str | None, as_json: bool) -> None:
    """Try every known bypass against the remote, restore main, and print what held (exit 1 if not)."""
    report = bypass.verify(get_config(ctx), remote, mode=mode)
    if as_json:
        echo_json(report.as_dict())
    else:
        _print_verify(report)
    if not report.ok:
        sys.exit(1)


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
    for group in (hooks, remote_group, authority_group):
        cli.add_command(group)
