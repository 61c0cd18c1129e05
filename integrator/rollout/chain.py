"""The rules of a declared rollout (FR1.1-1.3): its parent and slices on the roadmap, in the declared
order, each slice in the parent's group, after its predecessor, and all resting on the first slice.

The slices come from the parent's ``slices:`` in ``roadmap.yaml``; nothing here knows their names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from integrator.rollout.models import Plan, RoadmapEntry, Rollout
from integrator.rollout.order import first_index
from integrator.rollout.problems import Problem, error


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


def _check_declarations(rollout: Rollout) -> list[Problem]:
    """At least one rollout, and each slice belongs to one rollout, once."""
    path = rollout.roadmap_path
    plans = rollout.plans
    if not plans:
        return [
            error(
                "FR1.1",
                path,
                None,
                "no entry declares a rollout (a parent entry with slices: in build order)",
            )
        ]
    problems: list[Problem] = []
    owner: dict[str, str] = {}
    for plan in plans:
        for slug in plan.slices:
            if slug == plan.parent or slug in owner:
                where = "itself" if slug == plan.parent else owner[slug]
                problems.append(
                    error(
                        "schema",
                        path,
                        plan.line,
                        f"{plan.parent}: slices lists {slug}, already a todo of {where}",
                    )
                )
            owner.setdefault(slug, plan.parent)
        owner.setdefault(plan.parent, plan.parent)
    return problems


def _check_plan(
    rollout: Rollout, plan: Plan, by_slug: Mapping[str, RoadmapEntry], index: Mapping[str, int]
) -> list[Problem]:
    problems = _check_order(rollout.roadmap_path, plan, by_slug, index)
    graph = {slug: e.after for slug, e in by_slug.items()}
    for position, slug in enumerate(plan.slices):
        entry = by_slug.get(slug)
        if entry is not None:
            problems += _check_slice(rollout.roadmap_path, plan, position, entry, graph)
    return problems


def _check_order(
    path: Path, plan: Plan, by_slug: Mapping[str, RoadmapEntry], index: Mapping[str, int]
) -> list[Problem]:
    """The plan's todos are all in the roadmap, in the plan's order."""
    problems: list[Problem] = []
    previous: str | None = None
    for slug in plan.todos:
        if slug not in index:
            problems.append(error("FR1.1", path, None, f"{slug} is missing from the roadmap"))
            continue
        if previous is not None and index[previous] > index[slug]:
            order = ", ".join(plan.todos)
            problems.append(
                error(
                    "FR1.1",
                    path,
                    by_slug[slug].line,
                    f"{slug} must come after {previous} (rollout order: {order})",
                )
            )
        previous = slug
    return problems


def _check_slice(
    path: Path, plan: Plan, position: int, entry: RoadmapEntry, graph: Mapping[str, tuple[str, ...]]
) -> list[Problem]:
    """One slice of the plan: its group, and its place in the dependency chain."""
    slug, first = entry.slug, plan.slices[0]
    problems: list[Problem] = []
    if entry.group != plan.parent:
        message = f"{slug} must have group: {plan.parent} (has {entry.group!r})"
        problems.append(error("group", path, entry.line, message))
    if position == 0:
        others = [d for d in entry.after if d in plan.todos]
        if others:
            message = f"{slug} is the first slice and must not wait for {', '.join(others)}"
            problems.append(error("FR1.2", path, entry.line, message))
        return problems
    predecessor = plan.slices[position - 1]
    if predecessor not in entry.after:
        message = f"{slug} must have after: {predecessor} (it depends on the prior slice)"
        problems.append(error("FR1.3", path, entry.line, message))
    if not _reaches(graph, slug, first):
        message = f"{slug} does not depend (directly or through its predecessors) on {first}"
        problems.append(error("FR1.2", path, entry.line, message))
    return problems


def check_chain(rollout: Rollout, entries: tuple[RoadmapEntry, ...]) -> list[Problem]:
    """Every declared rollout's chain, after the declarations themselves."""
    index = first_index(entries)
    by_slug = {slug: entries[i] for slug, i in index.items()}
    problems = _check_declarations(rollout)
    for plan in rollout.plans:
        problems.extend(_check_plan(rollout, plan, by_slug, index))
    return problems
