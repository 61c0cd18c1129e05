"""Rollout governance: the roadmap, the delivered list, each slice's draft and gate, and their rules.

:func:`load_rollout` reads ``todos/`` into plain data (every file problem becomes a :class:`Problem`,
never an exception); :func:`validate` applies the rules to that data without touching the disk;
:func:`live_evidence` gathers what the running system can show about each slice. Printing is the CLI's.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from integrator import rollout_evidence
from integrator.errors import InvalidInput

if TYPE_CHECKING:
    from integrator.config import Config

PARENT: Final = "integration-orchestrator-rollout"
# FR1.1: the five slices in the order they must be built.
SLICES: Final = (
    "integration-safety-gates",
    "integration-events-model",
    "integrator-shadow-mode",
    "integrator-cutover",
    "integration-blocked-flow",
)
ROLLOUT: Final = (PARENT, *SLICES)

ROADMAP_FILE: Final = "roadmap.yaml"
DELIVERED_FILE: Final = "delivered.yaml"
REQUIREMENTS_FILE: Final = "requirements.md"
PLAN_FILE: Final = "implementation-plan.md"
STATE_FILE: Final = "state.yaml"
DEMO_FILE: Final = "demo.md"
FOLLOWUP_SUFFIX: Final = rollout_evidence.FOLLOWUP_SUFFIX

DOR_STATUSES: Final = ("pass", "fail")
BUILD_STATES: Final = ("pending", "in_progress", "done")
REVIEW_STATES: Final = ("pending", "approved", "changes_requested")
DOR_SCORE_MAX: Final = 10
STARTED: Final = ("in_progress", "done")

_ENTRY_KEYS: Final = frozenset({"slug", "group", "after", "description"})
_DELIVERED_KEYS: Final = frozenset({"slug", "delivered_at", "evidence", "description"})
_STATE_KEYS: Final = frozenset({"dor", "build", "review", "notes"})
_DOR_KEYS: Final = frozenset({"status", "score", "blockers"})
# Looser than an event slug: follow-up todos append "-integration-blocked" to a slug of up to 64.
_SLUG_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
_TRACE_TOKEN: Final = re.compile(r"`([^`\s]+)`")
_TRACE_PATH: Final = re.compile(r"[A-Za-z0-9_.\-/]+(?:::[A-Za-z_][A-Za-z0-9_.]*)?")
_TRACE_HEADING: Final = re.compile(r"^(#{1,6})\s+Traceability\b", re.IGNORECASE)
_HEADING: Final = re.compile(r"^(#{1,6})\s")

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding, located in a file (and a 1-based line when the parser knows it)."""

    severity: Severity
    rule: str
    file: Path
    line: int | None
    message: str

    def render(self, base: Path | None = None) -> str:
        shown: Path | str = self.file
        if base is not None:
            try:
                shown = self.file.relative_to(base)
            except ValueError:
                shown = self.file
        where = f"{shown}:{self.line}" if self.line is not None else str(shown)
        return f"{where}: {self.severity} [{self.rule}]: {self.message}"


@dataclass(frozen=True)
class RoadmapEntry:
    slug: str
    group: str | None = None
    after: tuple[str, ...] = ()
    description: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class DeliveredEntry:
    slug: str
    delivered_at: str | None = None
    evidence: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Gate:
    """The definition-of-ready gate from ``state.yaml``'s ``dor`` block."""

    status: str
    score: float
    blockers: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass(frozen=True)
class SliceState:
    gate: Gate
    build: str
    review: str
    # Line of each top-level key, so rule problems can point at the offending value.
    lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Trace:
    """A backticked ``path`` or ``path::symbol`` in a requirements' Traceability section."""

    target: str
    line: int
    path_exists: bool
    symbol_found: bool | None  # None when there is no symbol or the file cannot be searched


@dataclass(frozen=True)
class SliceDocs:
    """What is on disk for one rollout todo folder."""

    slug: str
    folder: Path
    folder_exists: bool = False
    requirements: bool = False  # present and not blank
    plan: bool = False
    demo: bool = False
    state: SliceState | None = None  # None: missing or invalid (a load problem says which)
    traces: tuple[Trace, ...] = ()

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE


@dataclass(frozen=True)
class Rollout:
    todos_dir: Path
    root: Path
    roadmap: tuple[RoadmapEntry, ...] | None  # None: roadmap.yaml missing or unreadable
    delivered: tuple[DeliveredEntry, ...]
    docs: Mapping[str, SliceDocs]
    load_problems: tuple[Problem, ...] = ()

    @property
    def roadmap_path(self) -> Path:
        return self.todos_dir / ROADMAP_FILE

    @property
    def delivered_path(self) -> Path:
        return self.todos_dir / DELIVERED_FILE

    @property
    def delivered_slugs(self) -> frozenset[str]:
        return frozenset(d.slug for d in self.delivered)


def _problem(severity: Severity, rule: str, file: Path, line: int | None, message: str) -> Problem:
    return Problem(severity, rule, file, line, message)


def _error(rule: str, file: Path, line: int | None, message: str) -> Problem:
    return Problem("error", rule, file, line, message)


def _warning(rule: str, file: Path, line: int | None, message: str) -> Problem:
    return Problem("warning", rule, file, line, message)


# --------------------------------------------------------------------------------------------------
# Loading


def _line_of(node: Any, *, key: Any = None, index: int | None = None) -> int | None:
    """1-based line of a mapping key, a sequence item, or the node itself (ruamel round-trip data)."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is not None:
            return int(lc.key(key)[0]) + 1
        if index is not None:
            return int(lc.item(index)[0]) + 1
        return int(lc.line) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _read_yaml(path: Path, problems: list[Problem]) -> tuple[bool, Any]:
    """Parse ``path``; on failure record why (with the parser's line) and return ``(False, None)``."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        problems.append(_error("yaml", path, None, f"not UTF-8 text: {err}"))
        return False, None
    except OSError as err:
        problems.append(_error("yaml", path, None, f"cannot read: {err.strerror or err}"))
        return False, None
    try:
        return True, YAML(typ="rt").load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(p for p in (err.context, err.problem) if p) or "syntax error"
        problems.append(_error("yaml", path, line, f"not valid YAML: {what}"))
    except YAMLError as err:
        problems.append(_error("yaml", path, None, f"not valid YAML: {err}"))
    return False, None


def _slug_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {value!r}"
    if not _SLUG_RE.fullmatch(value):
        return f"{value!r} must match [a-z0-9][a-z0-9-]* (at most 128 characters)"
    return None


def _parse_roadmap(path: Path, problems: list[Problem]) -> tuple[RoadmapEntry, ...] | None:
    if not path.is_file():
        problems.append(_error("yaml", path, None, "missing: the roadmap encodes the rollout order"))
        return None
    ok, data = _read_yaml(path, problems)
    if not ok:
        return None
    if data is None:
        data = []
    if not isinstance(data, list):
        problems.append(
            _error(
                "yaml", path, _line_of(data), "must be a YAML list of {slug, group?, after?, description?}"
            )
        )
        return None
    entries: list[RoadmapEntry] = []
    for i, item in enumerate(data):
        line = _line_of(data, index=i)
        if not isinstance(item, dict):
            problems.append(_error("schema", path, line, f"entry {i + 1} must be a mapping, got {item!r}"))
            continue
        slug_issue = _slug_problem(item.get("slug")) if "slug" in item else "is required"
        if slug_issue:
            problems.append(_error("schema", path, line, f"entry {i + 1}: slug {slug_issue}"))
            continue
        slug = str(item["slug"])
        group = item.get("group")
        if group is not None and (issue := _slug_problem(group)):
            problems.append(_error("schema", path, _line_of(item, key="group"), f"{slug}: group {issue}"))
        raw_after = item.get("after")
        after: tuple[str, ...] = ()
        if isinstance(raw_after, str):
            after = (raw_after,)
        elif isinstance(raw_after, list) and all(isinstance(a, str) for a in raw_after):
            after = tuple(str(a) for a in raw_after)
        elif raw_after is not None:
            problems.append(
                Problem(
                    "error",
                    "schema",
                    path,
                    _line_of(item, key="after"),
                    f"{slug}: after must be a slug or a list of slugs, got {raw_after!r}",
                )
            )
        description = item.get("description")
        if description is not None and not isinstance(description, str):
            problems.append(
                _error("schema", path, _line_of(item, key="description"), f"{slug}: description must be text")
            )
        for key in item:
            if key not in _ENTRY_KEYS:
                problems.append(
                    Problem(
                        "warning",
                        "schema",
                        path,
                        _line_of(item, key=key),
                        f"{slug}: unknown key {key!r} (known: {', '.join(sorted(_ENTRY_KEYS))})",
                    )
                )
        # A malformed entry still takes its place in the order, so later rules do not invent
        # "missing" or "unknown dependency" problems on top of the schema one.
        entries.append(
            RoadmapEntry(
                slug=slug,
                group=group if isinstance(group, str) else None,
                after=after,
                description=description if isinstance(description, str) else None,
                line=line,
            )
        )
    return tuple(entries)


def _parse_delivered(path: Path, problems: list[Problem]) -> tuple[DeliveredEntry, ...]:
    if not path.is_file():
        return ()  # nothing delivered yet
    ok, data = _read_yaml(path, problems)
    if not ok or data is None:
        return ()
    if not isinstance(data, list):
        problems.append(_error("yaml", path, _line_of(data), "must be a YAML list of {slug, ...}"))
        return ()
    out: list[DeliveredEntry] = []
    seen: dict[str, int | None] = {}
    for i, item in enumerate(data):
        line = _line_of(data, index=i)
        raw = item.get("slug") if isinstance(item, dict) else item
        issue = _slug_problem(raw) if raw is not None else "is required"
        if issue:
            problems.append(_error("delivered", path, line, f"entry {i + 1}: slug {issue}"))
            continue
        slug = str(raw)
        if slug in seen:
            problems.append(
                _error("duplicate", path, line, f"{slug} is listed twice (first at line {seen[slug]})")
            )
            continue
        seen[slug] = line
        fields: dict[str, str | None] = {"delivered_at": None, "evidence": None}
        if isinstance(item, dict):
            for key, value in item.items():
                if key not in _DELIVERED_KEYS:
                    problems.append(
                        _warning("schema", path, _line_of(item, key=key), f"{slug}: unknown key {key!r}")
                    )
                elif key in fields:
                    fields[key] = None if value is None else str(value)
        out.append(DeliveredEntry(slug, fields["delivered_at"], fields["evidence"], line))
    return tuple(out)


def _parse_state(path: Path, problems: list[Problem]) -> SliceState | None:
    if not path.is_file():
        return None  # the gate rule reports it, with the slice's context
    ok, data = _read_yaml(path, problems)
    if not ok:
        return None
    found: list[Problem] = []

    def bad(message: str, line: int | None) -> None:
        found.append(_error("gate", path, line, message))

    if not isinstance(data, dict):
        bad("must be a mapping with dor, build and review", _line_of(data))
        problems.extend(found)
        return None
    for key in data:
        if key not in _STATE_KEYS:
            found.append(_warning("schema", path, _line_of(data, key=key), f"unknown key {key!r}"))
    dor = data.get("dor")
    status: str = ""
    score: float = 0.0
    blockers: tuple[str, ...] = ()
    if not isinstance(dor, dict):
        bad(
            "dor must be a mapping {status, score, blockers}",
            _line_of(data, key="dor") if "dor" in data else None,
        )
    else:
        raw_status = dor.get("status")
        if raw_status not in DOR_STATUSES:
            bad(
                f"dor.status must be one of {', '.join(DOR_STATUSES)}, got {raw_status!r}",
                _line_of(dor, key="status") or _line_of(data, key="dor"),
            )
        else:
            status = str(raw_status)
        raw_score = dor.get("score")
        if (
            isinstance(raw_score, bool)
            or not isinstance(raw_score, (int, float))
            or not (0 <= raw_score <= DOR_SCORE_MAX)
        ):
            bad(
                f"dor.score must be a number from 0 to {DOR_SCORE_MAX}, got {raw_score!r}",
                _line_of(dor, key="score") or _line_of(data, key="dor"),
            )
        else:
            score = float(raw_score)
        raw_blockers = dor.get("blockers", [])
        if raw_blockers is None:
            raw_blockers = []
        if not isinstance(raw_blockers, list) or not all(isinstance(b, str) for b in raw_blockers):
            bad(f"dor.blockers must be a list of text, got {raw_blockers!r}", _line_of(dor, key="blockers"))
        else:
            blockers = tuple(str(b) for b in raw_blockers)
        for key in dor:
            if key not in _DOR_KEYS:
                found.append(_warning("schema", path, _line_of(dor, key=key), f"unknown key dor.{key}"))
    values: dict[str, str] = {}
    for key, allowed in (("build", BUILD_STATES), ("review", REVIEW_STATES)):
        value = data.get(key)
        if value not in allowed:
            bad(
                f"{key} must be one of {', '.join(allowed)}, got {value!r}",
                _line_of(data, key=key) if key in data else None,
            )
        else:
            values[key] = str(value)
    problems.extend(found)
    if any(p.severity == "error" for p in found):
        return None
    lines = {str(k): line for k in data if (line := _line_of(data, key=k)) is not None}
    return SliceState(Gate(status, score, blockers), values["build"], values["review"], lines)


def _symbol_defined(text: str, symbol: str) -> bool:
    name = re.escape(symbol.rsplit(".", 1)[-1])
    return bool(
        re.search(rf"^[ \t]*(?:async[ \t]+def|def|class)[ \t]+{name}\b", text, re.MULTILINE)
        or re.search(rf"^{name}[ \t]*[:=]", text, re.MULTILINE)
    )


def parse_traces(text: str) -> list[tuple[str, int]]:
    """Backticked ``path`` / ``path::symbol`` tokens in the Traceability section, with their lines."""
    found: list[tuple[str, int]] = []
    level = 0
    for number, line in enumerate(text.splitlines(), start=1):
        heading = _HEADING.match(line)
        if heading:
            trace = _TRACE_HEADING.match(line)
            if trace:
                level = len(trace.group(1))
                continue
            if level and len(heading.group(1)) <= level:
                level = 0
        if not level:
            continue
        for token in _TRACE_TOKEN.findall(line):
            path = token.split("::", 1)[0]
            if _TRACE_PATH.fullmatch(token) and ("/" in path or "." in path.lstrip(".")):
                found.append((token, number))
    return found


def _load_traces(text: str, root: Path) -> tuple[Trace, ...]:
    traces: list[Trace] = []
    for token, line in parse_traces(text):
        rel, _, symbol = token.partition("::")
        target = root / rel
        # Traces are project-relative; anything escaping the project counts as missing.
        inside = not Path(rel).is_absolute() and ".." not in Path(rel).parts
        exists = inside and target.exists()
        found: bool | None = None
        if symbol and exists and target.is_file():
            try:
                found = _symbol_defined(target.read_text(encoding="utf-8"), symbol)
            except (OSError, UnicodeDecodeError):
                found = None
        traces.append(Trace(token, line, exists, found))
    return tuple(traces)


def _non_blank(path: Path) -> bool:
    try:
        return bool(path.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        return False


def _load_docs(slug: str, todos_dir: Path, root: Path, problems: list[Problem]) -> SliceDocs:
    folder = todos_dir / slug
    if not folder.is_dir():
        return SliceDocs(slug, folder)
    requirements = folder / REQUIREMENTS_FILE
    traces: tuple[Trace, ...] = ()
    if requirements.is_file():
        try:
            traces = _load_traces(requirements.read_text(encoding="utf-8"), root)
        except (OSError, UnicodeDecodeError) as err:
            problems.append(_error("draft", requirements, None, f"cannot read: {err}"))
    return SliceDocs(
        slug=slug,
        folder=folder,
        folder_exists=True,
        requirements=_non_blank(requirements),
        plan=_non_blank(folder / PLAN_FILE),
        demo=_non_blank(folder / DEMO_FILE),
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
    docs = {slug: _load_docs(slug, todos_dir, root, problems) for slug in ROLLOUT}
    return Rollout(todos_dir, root, roadmap, delivered, docs, tuple(problems))


# --------------------------------------------------------------------------------------------------
# Rules (pure: they only look at the loaded data)


def _first_index(entries: Iterable[RoadmapEntry]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, entry in enumerate(entries):
        index.setdefault(entry.slug, i)
    return index


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[tuple[str, ...]]:
    """Dependency cycles as ``(a, b, ..., a)``: at least one through every cyclic group, none twice."""
    color: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []
    cycles: list[tuple[str, ...]] = []
    seen: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        color[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if color.get(nxt) == 1:
                cycle = (*stack[stack.index(nxt) :], nxt)
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    cycles.append(cycle)
            elif nxt not in color:
                visit(nxt)
        stack.pop()
        color[node] = 2

    for node in graph:
        if node not in color:
            visit(node)
    return cycles


def _check_roadmap(rollout: Rollout, entries: tuple[RoadmapEntry, ...]) -> list[Problem]:
    path = rollout.roadmap_path
    problems: list[Problem] = []
    index = _first_index(entries)
    delivered = rollout.delivered_slugs
    for i, entry in enumerate(entries):
        first = index[entry.slug]
        if first != i:
            problems.append(
                _error(
                    "duplicate",
                    path,
                    entry.line,
                    f"{entry.slug} is listed twice (first at line {entries[first].line})",
                )
            )
    graph: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        graph.setdefault(entry.slug, entry.after)
    cycles = find_cycles(graph)
    in_cycle: set[tuple[str, str]] = set()
    for cycle in cycles:
        in_cycle.update(itertools.pairwise(cycle))
        head = entries[index[cycle[0]]]
        problems.append(_error("cycle", path, head.line, "dependency cycle: " + " -> ".join(cycle)))
    for i, entry in enumerate(entries):
        if index[entry.slug] != i:
            continue
        for dep in entry.after:
            if dep not in index and dep not in delivered:
                problems.append(
                    _error(
                        "after-unknown",
                        path,
                        entry.line,
                        f"{entry.slug}: after {dep!r} is neither in the roadmap nor in {DELIVERED_FILE}",
                    )
                )
            elif dep in index and index[dep] > i and (entry.slug, dep) not in in_cycle:
                problems.append(
                    _error(
                        "order",
                        path,
                        entry.line,
                        f"{entry.slug} comes before {dep} (line {entries[index[dep]].line}), "
                        "which it depends on",
                    )
                )
    return problems


def _reaches(graph: Mapping[str, tuple[str, ...]], start: str, goal: str) -> bool:
    todo, seen = list(graph.get(start, ())), set()
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


def _check_chain(rollout: Rollout, entries: tuple[RoadmapEntry, ...]) -> list[Problem]:
    """FR1.1-1.3: the five slices, in order, each after its predecessor, grouped under the parent."""
    path = rollout.roadmap_path
    problems: list[Problem] = []
    index = _first_index(entries)
    by_slug = {slug: entries[i] for slug, i in index.items()}
    graph = {slug: e.after for slug, e in by_slug.items()}
    previous: str | None = None
    for slug in ROLLOUT:
        if slug not in index:
            problems.append(_error("FR1.1", path, None, f"{slug} is missing from the roadmap"))
            continue
        if previous is not None and index[previous] > index[slug]:
            problems.append(
                _error(
                    "FR1.1",
                    path,
                    by_slug[slug].line,
                    f"{slug} must come after {previous} (rollout order: {', '.join(ROLLOUT)})",
                )
            )
        previous = slug
    for position, slug in enumerate(SLICES):
        entry = by_slug.get(slug)
        if entry is None:
            continue
        if entry.group != PARENT:
            problems.append(
                _error("group", path, entry.line, f"{slug} must have group: {PARENT} (has {entry.group!r})")
            )
        if position == 0:
            others = [d for d in entry.after if d in ROLLOUT]
            if others:
                problems.append(
                    _error(
                        "FR1.2",
                        path,
                        entry.line,
                        f"{slug} is the first slice and must not wait for {', '.join(others)}",
                    )
                )
            continue
        predecessor = SLICES[position - 1]
        if predecessor not in entry.after:
            problems.append(
                _error(
                    "FR1.3",
                    path,
                    entry.line,
                    f"{slug} must have after: {predecessor} (it depends on the prior slice)",
                )
            )
        if not _reaches(graph, slug, SLICES[0]):
            problems.append(
                _error(
                    "FR1.2",
                    path,
                    entry.line,
                    f"{slug} does not depend (directly or through its predecessors) on {SLICES[0]}",
                )
            )
    return problems


def _complete(rollout: Rollout, slug: str) -> bool:
    if slug in rollout.delivered_slugs:
        return True
    docs = rollout.docs.get(slug)
    return bool(docs and docs.state and docs.state.build == "done")


def _check_traces(docs: SliceDocs, strict_paths: bool) -> list[Problem]:
    requirements = docs.folder / REQUIREMENTS_FILE
    if not docs.requirements:
        return []
    if not docs.traces:
        return [
            _warning(
                "trace",
                requirements,
                None,
                "no Traceability section naming the code and tests that deliver this slice",
            )
        ]
    severity: Severity = "error" if strict_paths else "warning"
    problems: list[Problem] = []
    reported: set[str] = set()
    for trace in docs.traces:
        # Tables name the same file on several rows (and with several symbols): one report each.
        path = trace.target.split("::", 1)[0]
        if not trace.path_exists:
            if path not in reported:
                reported.add(path)
                problems.append(
                    _problem(
                        severity, "trace", requirements, trace.line, f"traced path {path} does not exist"
                    )
                )
        elif trace.symbol_found is False and trace.target not in reported:
            reported.add(trace.target)
            problems.append(
                _problem(
                    severity,
                    "trace",
                    requirements,
                    trace.line,
                    f"traced symbol {trace.target} is not defined there",
                )
            )
    return problems


def _check_progression(
    rollout: Rollout, slug: str, entry: RoadmapEntry | None, file: Path, line: int | None
) -> list[Problem]:
    """FR1.3: slices may be built in parallel, but none is finished before what it depends on.

    A delivered slice needs its dependencies delivered; a slice whose build is done needs them
    delivered or done.
    """
    if entry is None:
        return []
    delivered = slug in rollout.delivered_slugs
    if delivered:
        waiting = [d for d in entry.after if d not in rollout.delivered_slugs]
        if line is None:
            line = next((d.line for d in rollout.delivered if d.slug == slug), None)
        what = f"{slug} is delivered"
    else:
        waiting = [d for d in entry.after if not _complete(rollout, d)]
        what = f"{slug}: build is done"
    if not waiting:
        return []
    return [
        _error(
            "progression",
            file,
            line,
            f"{what} before {', '.join(waiting)} is " + ("delivered" if delivered else "complete"),
        )
    ]


def _check_slice(rollout: Rollout, slug: str, entry: RoadmapEntry | None) -> list[Problem]:
    docs = rollout.docs[slug]
    delivered = slug in rollout.delivered_slugs
    state = docs.state
    problems: list[Problem] = []
    if delivered:
        if state is not None and (state.build != "done" or state.review != "approved"):
            problems.append(
                _error(
                    "delivered",
                    docs.state_path,
                    state.lines.get("build"),
                    f"{slug} is in {DELIVERED_FILE} but its state is build: {state.build}, "
                    f"review: {state.review} (needs done / approved)",
                )
            )
        problems.extend(_check_progression(rollout, slug, entry, rollout.delivered_path, None))
        problems.extend(_check_traces(docs, strict_paths=True))
        return problems

    if not docs.folder_exists:
        return [
            _error(
                "draft",
                docs.folder,
                None,
                f"{slug} is active but has no folder: it needs {REQUIREMENTS_FILE}, {PLAN_FILE} "
                f"and {STATE_FILE} before it may be built",
            )
        ]
    for name, present in ((REQUIREMENTS_FILE, docs.requirements), (PLAN_FILE, docs.plan)):
        if not present:
            problems.append(
                _error("draft", docs.folder / name, None, f"{slug}: the draft needs a non-empty {name}")
            )
    if not docs.demo:
        problems.append(
            _warning(
                "demo", docs.folder / DEMO_FILE, None, f"{slug}: no {DEMO_FILE} showing the slice's commands"
            )
        )
    if state is None:
        if not docs.state_path.is_file():
            problems.append(
                _error("gate", docs.state_path, None, f"{slug}: no gate ({STATE_FILE} is missing)")
            )
        return [*problems, *_check_traces(docs, strict_paths=False)]

    gate = state.gate
    dor_line = state.lines.get("dor")
    build_line = state.lines.get("build")
    if gate.passed and gate.blockers:
        problems.append(
            _error(
                "gate",
                docs.state_path,
                dor_line,
                f"{slug}: dor passes with {len(gate.blockers)} open blocker(s)",
            )
        )
    if state.build in STARTED and not gate.passed:
        problems.append(
            _error(
                "gate",
                docs.state_path,
                build_line,
                f"{slug}: build is {state.build} but the gate fails (dor.status: {gate.status})",
            )
        )
    if state.review == "approved" and state.build != "done":
        problems.append(
            _error(
                "review",
                docs.state_path,
                state.lines.get("review"),
                f"{slug}: review approved while build is {state.build}",
            )
        )
    if state.build == "done":
        problems.extend(_check_progression(rollout, slug, entry, docs.state_path, build_line))
    problems.extend(_check_traces(docs, strict_paths=state.build == "done"))
    return problems


def validate(rollout: Rollout) -> list[Problem]:
    """Every problem in ``rollout``: load problems first, then the rules, errors and warnings mixed."""
    problems = list(rollout.load_problems)
    entries = rollout.roadmap
    if entries is not None:
        problems.extend(_check_roadmap(rollout, entries))
        problems.extend(_check_chain(rollout, entries))
    by_slug: dict[str, RoadmapEntry] = {}
    for entry in entries or ():
        by_slug.setdefault(entry.slug, entry)
    for slug in ROLLOUT:
        problems.extend(_check_slice(rollout, slug, by_slug.get(slug)))
    return problems


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


# --------------------------------------------------------------------------------------------------
# Status and live evidence


@dataclass(frozen=True)
class SliceStatus:
    slug: str
    group: str | None
    after: tuple[str, ...]
    delivered: bool
    rollout: bool  # one of the parent and its five slices (others are e.g. follow-up todos)
    gate: str | None
    score: float | None
    blockers: tuple[str, ...]
    build: str | None
    review: str | None
    evidence: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "group": self.group,
            "after": list(self.after),
            "delivered": self.delivered,
            "rollout": self.rollout,
            "gate": self.gate,
            "score": self.score,
            "blockers": list(self.blockers),
            "build": self.build,
            "review": self.review,
            "evidence": self.evidence,
        }


def slice_statuses(rollout: Rollout, evidence: Mapping[str, str] | None = None) -> list[SliceStatus]:
    """One row per roadmap entry in roadmap order, then delivered slices no longer on the roadmap."""
    evidence = evidence or {}
    entries = list(rollout.roadmap or ())
    listed = {e.slug for e in entries}
    entries += [RoadmapEntry(d.slug) for d in rollout.delivered if d.slug not in listed]
    rows: list[SliceStatus] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.slug in seen:
            continue
        seen.add(entry.slug)
        docs = rollout.docs.get(entry.slug)
        state = docs.state if docs else None
        rows.append(
            SliceStatus(
                slug=entry.slug,
                group=entry.group,
                after=entry.after,
                delivered=entry.slug in rollout.delivered_slugs,
                rollout=entry.slug in ROLLOUT,
                gate=state.gate.status if state else None,
                score=state.gate.score if state else None,
                blockers=state.gate.blockers if state else (),
                build=state.build if state else None,
                review=state.review if state else None,
                evidence=evidence.get(entry.slug),
            )
        )
    return rows


EvidenceProbe = Callable[["Config"], "str | None"]
"""Reads one fact about a slice from the running system; ``None`` means nothing to show."""


# The hook for live evidence: slug -> probes, each returning one fact or None. The defaults
# (integrator/rollout_evidence.py) run the safety gate on the configured repository and read the store
# read-only: events and candidates, mode and parity, the authority record, follow-ups and blocked items.
# More plug in by adding to this table or by calling register_evidence() from a module the CLI
# imports. Probes are synchronous because `rollout status` is.
EVIDENCE_PROBES: dict[str, list[EvidenceProbe]] = {
    slug: list(probes) for slug, probes in rollout_evidence.DEFAULT_PROBES.items()
}


def register_evidence(slug: str, probe: EvidenceProbe) -> None:
    """Add ``probe`` to the facts shown for ``slug`` by ``integrator rollout status``."""
    EVIDENCE_PROBES.setdefault(slug, []).append(probe)


def live_facts(cfg: Config) -> dict[str, list[str]]:
    """What the running system shows for each slice, one fact per probe. A failing probe shows its error."""
    out: dict[str, list[str]] = {}
    for slug, probes in EVIDENCE_PROBES.items():
        facts: list[str] = []
        for probe in probes:
            try:
                fact = probe(cfg)
            # A status display must survive any one probe breaking; the failure is shown, not hidden.
            except Exception as err:
                fact = f"probe {getattr(probe, '__name__', 'probe')} failed: {type(err).__name__}: {err}"
            if fact:
                facts.append(fact)
        if facts:
            out[slug] = facts
    return out


def join_facts(facts: Mapping[str, list[str]]) -> dict[str, str]:
    return {slug: "; ".join(found) for slug, found in facts.items()}


def live_evidence(cfg: Config) -> dict[str, str]:
    """:func:`live_facts` joined per slug: the ``evidence`` of each :class:`SliceStatus`."""
    return join_facts(live_facts(cfg))
