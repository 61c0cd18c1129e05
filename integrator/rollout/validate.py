"""Every rule over a loaded :class:`~integrator.rollout.models.Rollout`; pure, it never reads the disk."""

from __future__ import annotations

from integrator.rollout.chain import check_chain
from integrator.rollout.models import RoadmapEntry, Rollout
from integrator.rollout.order import check_roadmap
from integrator.rollout.probes import PROBES
from integrator.rollout.problems import Problem, error
from integrator.rollout.slices import check_slice


def _check_probes(rollout: Rollout, entries: tuple[RoadmapEntry, ...]) -> list[Problem]:
    known = ", ".join(sorted(PROBES))
    return [
        error(
            "schema",
            rollout.roadmap_path,
            entry.line,
            f"{entry.slug}: unknown probe {name!r} (known: {known})",
        )
        for entry in entries
        for name in entry.probes
        if name not in PROBES
    ]


def validate(rollout: Rollout) -> list[Problem]:
    """Every problem in ``rollout``: load problems first, then the rules, errors and warnings mixed."""
    problems = list(rollout.load_problems)
    entries = rollout.roadmap
    if entries is not None:
        problems.extend(_check_probes(rollout, entries))
        problems.extend(check_roadmap(rollout, entries))
        problems.extend(check_chain(rollout, entries))
    by_slug: dict[str, RoadmapEntry] = {}
    for entry in entries or ():
        by_slug.setdefault(entry.slug, entry)
    for slug in rollout.rollout_todos:
        problems.extend(check_slice(rollout, slug, by_slug.get(slug)))
    return problems
