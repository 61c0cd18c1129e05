"""The roadmap's own rules, for every entry: each slug once, known dependencies, dependency order, no cycle."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from integrator.rollout.models import DELIVERED_FILE, RoadmapEntry, Rollout
from integrator.rollout.problems import Problem, error


def first_index(entries: Iterable[RoadmapEntry]) -> dict[str, int]:
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


def check_roadmap(rollout: Rollout, entries: tuple[RoadmapEntry, ...]) -> list[Problem]:
    path = rollout.roadmap_path
    problems: list[Problem] = []
    index = first_index(entries)
    delivered = rollout.delivered_slugs
    for i, entry in enumerate(entries):
        first = index[entry.slug]
        if first != i:
            problems.append(
                error(
                    "duplicate",
                    path,
                    entry.line,
                    f"{entry.slug} is listed twice (first at line {entries[first].line})",
                )
            )
    graph: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        graph.setdefault(entry.slug, entry.after)
    in_cycle: set[tuple[str, str]] = set()
    for cycle in find_cycles(graph):
        in_cycle.update(itertools.pairwise(cycle))
        head = entries[index[cycle[0]]]
        problems.append(error("cycle", path, head.line, "dependency cycle: " + " -> ".join(cycle)))
    for i, entry in enumerate(entries):
        if index[entry.slug] != i:
            continue
        for dep in entry.after:
            if dep not in index and dep not in delivered:
                problems.append(
                    error(
                        "after-unknown",
                        path,
                        entry.line,
                        f"{entry.slug}: after {dep!r} is neither in the roadmap nor in {DELIVERED_FILE}",
                    )
                )
            elif dep in index and index[dep] > i and (entry.slug, dep) not in in_cycle:
                problems.append(
                    error(
                        "order",
                        path,
                        entry.line,
                        f"{entry.slug} comes before {dep} (line {entries[index[dep]].line}), "
                        "which it depends on",
                    )
                )
    return problems
