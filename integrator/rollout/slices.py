"""The rules for each todo of a declared rollout: its draft (the artifacts the roadmap requires), its gate,
review and progression, what delivery needs, and its traced code and tests."""

from __future__ import annotations

from pathlib import Path

from integrator.rollout.models import (
    DELIVERED_FILE,
    REQUIREMENTS_FILE,
    STARTED,
    STATE_FILE,
    RoadmapEntry,
    Rollout,
    SliceDocs,
)
from integrator.rollout.problems import Problem, Severity, error, warning


def _complete(rollout: Rollout, slug: str) -> bool:
    if slug in rollout.delivered_slugs:
        return True
    docs = rollout.docs.get(slug)
    return bool(docs and docs.state and docs.state.build == "done")


def check_traces(docs: SliceDocs, strict_paths: bool) -> list[Problem]:
    requirements = docs.folder / REQUIREMENTS_FILE
    if not docs.requirements:
        return []
    if not docs.traces:
        return [
            warning(
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
                message = f"traced path {path} does not exist"
                problems.append(Problem(severity, "trace", requirements, trace.line, message))
        elif trace.symbol_found is False and trace.target not in reported:
            reported.add(trace.target)
            message = f"traced symbol {trace.target} is not defined there"
            problems.append(Problem(severity, "trace", requirements, trace.line, message))
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
    state = "delivered" if delivered else "complete"
    return [error("progression", file, line, f"{what} before {', '.join(waiting)} is {state}")]


def _check_delivered(rollout: Rollout, docs: SliceDocs, entry: RoadmapEntry | None) -> list[Problem]:
    state = docs.state
    problems: list[Problem] = []
    if state is not None and (state.build != "done" or state.review != "approved"):
        problems.append(
            error(
                "delivered",
                docs.state_path,
                state.lines.get("build"),
                f"{docs.slug} is in {DELIVERED_FILE} but its state is build: {state.build}, "
                f"review: {state.review} (needs done / approved)",
            )
        )
    problems.extend(_check_progression(rollout, docs.slug, entry, rollout.delivered_path, None))
    problems.extend(check_traces(docs, strict_paths=True))
    return problems


def _check_draft(rollout: Rollout, docs: SliceDocs) -> list[Problem]:
    """The artifacts the rollout's ``artifacts:`` asks for: required ones are errors, recommended ones warnings."""
    plan = rollout.plan_of(docs.slug)
    if plan is None:
        return []
    slug, required, recommended = docs.slug, plan.artifacts.required, plan.artifacts.recommended
    if not docs.folder_exists:
        needs = ", ".join(required)
        needs = f"{needs} and {STATE_FILE}" if needs else STATE_FILE
        message = f"{slug} is active but has no folder: it needs {needs} before it may be built"
        return [error("draft", docs.folder, None, message)]
    problems = [
        error("draft", docs.folder / name, None, f"{slug}: the draft needs a non-empty {name}")
        for name in required
        if not docs.present.get(name)
    ]
    problems += [
        # The rule is named for the file (`demo`), so `--strict` output says which habit was skipped.
        warning(Path(name).stem, docs.folder / name, None, f"{slug}: no {name} (the roadmap recommends one)")
        for name in recommended
        if not docs.present.get(name)
    ]
    return problems


def _check_gate(rollout: Rollout, docs: SliceDocs, entry: RoadmapEntry | None) -> list[Problem]:
    slug, state = docs.slug, docs.state
    if state is None:
        if docs.state_path.is_file():
            return []  # unreadable or invalid: the load problem says why
        return [error("gate", docs.state_path, None, f"{slug}: no gate ({STATE_FILE} is missing)")]
    gate = state.gate
    build_line = state.lines.get("build")
    problems: list[Problem] = []
    if gate.passed and gate.blockers:
        message = f"{slug}: dor passes with {len(gate.blockers)} open blocker(s)"
        problems.append(error("gate", docs.state_path, state.lines.get("dor"), message))
    if state.build in STARTED and not gate.passed:
        message = f"{slug}: build is {state.build} but the gate fails (dor.status: {gate.status})"
        problems.append(error("gate", docs.state_path, build_line, message))
    if state.review == "approved" and state.build != "done":
        message = f"{slug}: review approved while build is {state.build}"
        problems.append(error("review", docs.state_path, state.lines.get("review"), message))
    if state.build == "done":
        problems.extend(_check_progression(rollout, slug, entry, docs.state_path, build_line))
    return problems


def check_slice(rollout: Rollout, slug: str, entry: RoadmapEntry | None) -> list[Problem]:
    """A delivered todo is held to its state and traces; an active one to its draft, gate and progression."""
    docs = rollout.docs[slug]
    if slug in rollout.delivered_slugs:
        return _check_delivered(rollout, docs, entry)
    problems = _check_draft(rollout, docs)
    if not docs.folder_exists:
        return problems
    problems += _check_gate(rollout, docs, entry)
    building = docs.state is not None and docs.state.build == "done"
    return [*problems, *check_traces(docs, strict_paths=building)]
