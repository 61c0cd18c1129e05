"""CLI commands for the rollout area: ``rollout validate`` and ``rollout status``."""

from __future__ import annotations

from pathlib import Path

import click

from integrator.cli.common import echo_json, get_config, handle_errors
from integrator.config import Config, find_config_path
from integrator.rollout import (
    Problem,
    Rollout,
    SliceStatus,
    errors,
    join_facts,
    live_facts,
    load_rollout,
    slice_statuses,
    validate,
)

_ROOT_HELP = "The project root that traced paths are relative to (default: the todos directory's parent)."
_TODOS_HELP = "The todos directory (default: todos_dir from the configuration if one is found, else ./todos)."


def _config_if_any(ctx: click.Context) -> Config | None:
    """The configuration when one exists; a configuration that exists but is invalid is still an error."""
    explicit = ctx.find_root().obj.get("config_path")
    if not explicit and not find_config_path(None).is_file():
        return None
    return get_config(ctx)


def _base() -> Path:
    return Path.cwd().resolve()


def _load(
    ctx: click.Context, todos: Path | None, root: Path | None, *, want_config: bool
) -> tuple[Rollout, Config | None]:
    # An explicit --todos needs no configuration; only live evidence does.
    cfg = _config_if_any(ctx) if want_config or todos is None else None
    if todos is None:
        todos = cfg.todos_dir if cfg is not None else Path("todos")
    return load_rollout(todos, root=root), cfg


def _print_problems(problems: list[Problem]) -> None:
    base = _base()
    for problem in problems:
        click.echo(problem.render(base))


@click.group("rollout")
def rollout_group() -> None:
    """Rollout governance: roadmap order, slice drafts and gates."""


@rollout_group.command("validate")
@click.option("--todos", type=click.Path(path_type=Path, file_okay=False), default=None, help=_TODOS_HELP)
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=None, help=_ROOT_HELP)
@click.option("--strict", is_flag=True, help="Treat warnings (e.g. traced paths not built yet) as errors.")
@click.pass_context
@handle_errors
def validate_cmd(ctx: click.Context, todos: Path | None, root: Path | None, strict: bool) -> None:
    """Check the roadmap and every rollout slice's draft and gate; exit 2 on any problem."""
    rollout, _ = _load(ctx, todos, root, want_config=False)
    problems = validate(rollout)
    _print_problems(problems)
    failing = problems if strict else errors(problems)
    n_errors = len(errors(problems))
    warnings = len(problems) - n_errors
    if failing:
        summary = f"rollout validate: {n_errors} error(s), {warnings} warning(s) in {rollout.todos_dir}"
        click.echo(summary, err=True)
        ctx.exit(2)
    entries = rollout.roadmap or ()
    delivered = sum(1 for e in entries if e.slug in rollout.delivered_slugs)
    click.echo(
        f"OK: {rollout.roadmap_path} has {len(entries)} entries in dependency order, "
        f"{delivered} delivered; every active rollout slice has its draft and gate"
        + (f" ({warnings} warning(s))" if warnings else "")
    )


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _gate(row: SliceStatus) -> str:
    if row.gate is None:
        return "-"
    score = f"{row.score:g}" if row.score is not None else "?"
    blockers = f" ({len(row.blockers)} blocker(s))" if row.blockers else ""
    return f"{row.gate} {score}{blockers}"


@rollout_group.command("status")
@click.option("--todos", type=click.Path(path_type=Path, file_okay=False), default=None, help=_TODOS_HELP)
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=None, help=_ROOT_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
@click.pass_context
@handle_errors
def status_cmd(ctx: click.Context, todos: Path | None, root: Path | None, as_json: bool) -> None:
    """Each slice's gate, build and review, with live evidence from the configured integrator."""
    rollout, cfg = _load(ctx, todos, root, want_config=True)
    problems = validate(rollout)
    if rollout.roadmap is None:
        _print_problems(problems)
        ctx.exit(2)
    facts = live_facts(cfg, rollout) if cfg is not None else {}
    rows = slice_statuses(rollout, join_facts(facts))
    n_errors = len(errors(problems))
    if as_json:
        echo_json(
            {
                "todos": str(rollout.todos_dir),
                "evidence_available": cfg is not None,
                "slices": [row.to_dict() for row in rows],
                "problems": {"errors": n_errors, "warnings": len(problems) - n_errors},
            }
        )
        return
    width = max([len(r.slug) for r in rows] + [5])
    click.echo(f"{'SLICE':<{width}}  {'DELIVERED':<9}  {'GATE':<18}  {'BUILD':<11}  REVIEW")
    for row in rows:
        click.echo(
            f"{row.slug:<{width}}  {'yes' if row.delivered else 'no':<9}  {_gate(row):<18}  "
            f"{_cell(row.build):<11}  {_cell(row.review)}"
        )
        # One line per probe: a fact can hold "; " itself, so the joined text would not read.
        for n, fact in enumerate(facts.get(row.slug, ())):
            click.echo(f"{'':<{width}}  {'evidence:' if n == 0 else '':<9} {fact}")
    if cfg is None:
        click.echo("(no integrator.toml found: live evidence unavailable)")
    if problems:
        click.echo(
            f"validate: {n_errors} error(s), {len(problems) - n_errors} warning(s): "
            "run `integrator rollout validate` for details"
        )
    else:
        click.echo("validate: OK")


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
    cli.add_command(rollout_group)
