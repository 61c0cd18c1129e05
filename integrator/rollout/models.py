"""What ``todos/`` holds, as plain data: the roadmap, the rollouts it declares, each todo's folder.

Loading (:mod:`integrator.rollout.load`) builds these; the rules (:mod:`integrator.rollout.validate`)
and the status (:mod:`integrator.rollout.status`) only read them. Lines are 1-based, kept so that a
finding can point at the offending value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from integrator.rollout.problems import Problem
from integrator.rollout.schema import Artifacts

ROADMAP_FILE: Final = "roadmap.yaml"
DELIVERED_FILE: Final = "delivered.yaml"
STATE_FILE: Final = "state.yaml"
# The file whose Traceability section names the code and tests that deliver a todo.
REQUIREMENTS_FILE: Final = "requirements.md"
STARTED: Final = ("in_progress", "done")


@dataclass(frozen=True)
class RoadmapEntry:
    slug: str
    group: str | None = None
    after: tuple[str, ...] = ()
    description: str | None = None
    line: int | None = None
    slices: tuple[str, ...] | None = None  # set on the parent of a rollout: its slices in build order
    artifacts: Artifacts = field(default_factory=Artifacts)
    probes: tuple[str, ...] = ()  # names of live-evidence probes for `rollout status`


@dataclass(frozen=True)
class Plan:
    """A rollout the roadmap declares: a parent entry and its slices, built in this order."""

    parent: str
    slices: tuple[str, ...]
    artifacts: Artifacts
    line: int | None

    @property
    def todos(self) -> tuple[str, ...]:
        return (self.parent, *self.slices)


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
    present: Mapping[str, bool] = field(default_factory=dict)  # artifact -> present and not blank
    state: SliceState | None = None  # None: missing or invalid (a load problem says which)
    traces: tuple[Trace, ...] = ()

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    @property
    def requirements(self) -> bool:
        return bool(self.present.get(REQUIREMENTS_FILE))


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

    @property
    def plans(self) -> tuple[Plan, ...]:
        """Every rollout the roadmap declares, in roadmap order (the first entry of a duplicated slug)."""
        seen: set[str] = set()
        plans: list[Plan] = []
        for entry in self.roadmap or ():
            if entry.slug in seen:
                continue
            seen.add(entry.slug)
            if entry.slices is not None:
                plans.append(Plan(entry.slug, entry.slices, entry.artifacts, entry.line))
        return tuple(plans)

    @property
    def rollout_todos(self) -> tuple[str, ...]:
        """The parents and slices of every declared rollout, each once: the todos held to the rules."""
        return tuple(dict.fromkeys(slug for plan in self.plans for slug in plan.todos))

    def plan_of(self, slug: str) -> Plan | None:
        return next((plan for plan in self.plans if slug in plan.todos), None)
