"""Reading ``todos/`` into :class:`~integrator.rollout.models.Rollout`: every defect becomes a Problem.

The YAML files are checked against :mod:`integrator.rollout.schema`; each issue is reported with the
line of the offending key. Only a missing todos directory raises, so one run reports everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from integrator.errors import InvalidInput
from integrator.rollout.models import (
    DELIVERED_FILE,
    REQUIREMENTS_FILE,
    ROADMAP_FILE,
    STATE_FILE,
    DeliveredEntry,
    Gate,
    RoadmapEntry,
    Rollout,
    SliceDocs,
    SliceState,
    Trace,
)
from integrator.rollout.problems import Problem, error, warning
from integrator.rollout.schema import (
    DeliveredSpec,
    EntrySpec,
    StateSpec,
    check,
    dotted,
    unknown_keys,
)
from integrator.rollout.traces import load_traces
from integrator.rollout.yamlfile import line_at, line_of, read_yaml

_ENTRY_SHAPE = "{slug, group?, after?, description?, slices?, artifacts?, probes?}"


def _unknown(
    model: type[EntrySpec | DeliveredSpec | StateSpec],
    item: Mapping[Any, Any],
    path: Path,
    line: int | None,
    prefix: str = "",
) -> list[Problem]:
    """A warning per key the schema does not know: a newer file must not break an older validator."""
    return [
        warning(
            "schema",
            path,
            line_at(item, loc, line),
            f"{prefix}unknown key {dotted(loc)!r} (known: {', '.join(known)})",
        )
        for loc, known in unknown_keys(model, item)
    ]


def _parse_entry(
    item: Mapping[Any, Any], i: int, path: Path, line: int | None
) -> tuple[RoadmapEntry | None, list[Problem]]:
    spec, issues = check(EntrySpec, item)
    bad_slug = [issue for issue in issues if issue.loc[:1] == ("slug",)]
    if bad_slug:
        return None, [error("schema", path, line, f"entry {i + 1}: slug {bad_slug[0].message}")]
    slug = str(item["slug"])
    found = [
        error("schema", path, line_at(item, x.loc, line), f"{slug}: {x.key} {x.message}") for x in issues
    ]
    found += _unknown(EntrySpec, item, path, line, f"{slug}: ")
    if spec is None:
        # A malformed entry still takes its place in the order, so later rules do not invent
        # "missing" or "unknown dependency" problems on top of the schema one.
        failed = {x.loc[0] for x in issues}
        spec, _ = check(EntrySpec, {k: v for k, v in item.items() if k not in failed})
    if spec is None:  # pragma: no cover - every field but the slug has a default
        return None, found
    fields = spec.model_dump(include={"group", "after", "description", "slices", "artifacts", "probes"})
    return RoadmapEntry(slug=slug, line=line, **{**fields, "artifacts": spec.artifacts}), found


def _parse_roadmap(path: Path, problems: list[Problem]) -> tuple[RoadmapEntry, ...] | None:
    if not path.is_file():
        problems.append(error("yaml", path, None, "missing: the roadmap encodes the rollout order"))
        return None
    ok, data = read_yaml(path, problems)
    if not ok:
        return None
    if data is None:
        data = []
    if not isinstance(data, list):
        problems.append(error("yaml", path, line_of(data), f"must be a YAML list of {_ENTRY_SHAPE}"))
        return None
    entries: list[RoadmapEntry] = []
    for i, item in enumerate(data):
        line = line_of(data, index=i)
        if not isinstance(item, dict):
            problems.append(error("schema", path, line, f"entry {i + 1} must be a mapping, got {item!r}"))
            continue
        entry, found = _parse_entry(item, i, path, line)
        problems.extend(found)
        if entry is not None:
            entries.append(entry)
    return tuple(entries)


def _parse_delivered(path: Path, problems: list[Problem]) -> tuple[DeliveredEntry, ...]:
    if not path.is_file():
        return ()  # nothing delivered yet
    ok, data = read_yaml(path, problems)
    if not ok or data is None:
        return ()
    if not isinstance(data, list):
        problems.append(error("yaml", path, line_of(data), "must be a YAML list of {slug, ...}"))
        return ()
    out: list[DeliveredEntry] = []
    seen: dict[str, int | None] = {}
    for i, item in enumerate(data):
        line = line_of(data, index=i)
        raw = item if isinstance(item, dict) else ({} if item is None else {"slug": item})
        spec, issues = check(DeliveredSpec, raw)
        if spec is None:
            problems.append(error("delivered", path, line, f"entry {i + 1}: slug {issues[0].message}"))
            continue
        if spec.slug in seen:
            first = seen[spec.slug]
            problems.append(
                error("duplicate", path, line, f"{spec.slug} is listed twice (first at line {first})")
            )
            continue
        seen[spec.slug] = line
        problems.extend(_unknown(DeliveredSpec, raw, path, line, f"{spec.slug}: "))
        out.append(DeliveredEntry(spec.slug, spec.delivered_at, spec.evidence, line))
    return tuple(out)


def _parse_state(path: Path, problems: list[Problem]) -> SliceState | None:
    if not path.is_file():
        return None  # the gate rule reports it, with the slice's context
    ok, data = read_yaml(path, problems)
    if not ok:
        return None
    if not isinstance(data, dict):
        problems.append(error("gate", path, line_of(data), "must be a mapping with dor, build and review"))
        return None
    problems.extend(_unknown(StateSpec, data, path, None))
    spec, issues = check(StateSpec, data)
    problems.extend(error("gate", path, line_at(data, x.loc, None), f"{x.key} {x.message}") for x in issues)
    if spec is None:
        return None
    lines = {str(k): line for k in data if (line := line_of(data, key=k)) is not None}
    gate = Gate(spec.dor.status, spec.dor.score, spec.dor.blockers)
    return SliceState(gate, spec.build, spec.review, lines)


def _non_blank(path: Path) -> bool:
    try:
        return bool(path.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        return False


def _load_docs(rollout: Rollout, slug: str, problems: list[Problem]) -> SliceDocs:
    folder = rollout.todos_dir / slug
    if not folder.is_dir():
        return SliceDocs(slug, folder)
    plan = rollout.plan_of(slug)
    names = (*plan.artifacts.required, *plan.artifacts.recommended) if plan else ()
    requirements = folder / REQUIREMENTS_FILE
    traces: tuple[Trace, ...] = ()
    if requirements.is_file():
        try:
            traces = load_traces(requirements.read_text(encoding="utf-8"), rollout.root)
        except (OSError, UnicodeDecodeError) as err:
            problems.append(error("draft", requirements, None, f"cannot read: {err}"))
    return SliceDocs(
        slug=slug,
        folder=folder,
        folder_exists=True,
        present={name: _non_blank(folder / name) for name in (*names, REQUIREMENTS_FILE)},
        state=_parse_state(folder / STATE_FILE, problems),
        traces=traces,
    )


def load_rollout(todos_dir: Path, *, root: Path | None = None) -> Rollout:
    """Read ``todos_dir``. ``root`` (default: its parent) is what traced paths are relative to.

    Raises :class:`InvalidInput` only when ``todos_dir`` is not a directory; every other defect is
    returned as a load problem so that one run reports all of them.
    """
    todos_dir = Path(todos_dir)
    if not todos_dir.is_dir():
        raise InvalidInput(f"todos directory {todos_dir} does not exist (pass --todos DIR)")
    todos_dir = todos_dir.resolve()
    root = (root or todos_dir.parent).resolve()
    problems: list[Problem] = []
    roadmap = _parse_roadmap(todos_dir / ROADMAP_FILE, problems)
    delivered = _parse_delivered(todos_dir / DELIVERED_FILE, problems)
    plain = Rollout(todos_dir, root, roadmap, delivered, {})
    docs = {slug: _load_docs(plain, slug, problems) for slug in plain.rollout_todos}
    return Rollout(todos_dir, root, roadmap, delivered, docs, tuple(problems))
