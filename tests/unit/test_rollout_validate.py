"""Rollout governance: each validator rule on a small todos tree, the CLI exit statuses, our todos."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from integrator import git
from integrator.cli import cli
from integrator.config import build_config
from integrator.errors import InvalidInput
from integrator.rollout import (
    PROBES,
    Problem,
    find_cycles,
    join_facts,
    live_facts,
    load_rollout,
    parse_traces,
    slice_statuses,
    validate,
)

PROJECT = Path(__file__).resolve().parents[2]
# The validator knows no slice names: the fixture borrows this repository's, and
# test_a_rollout_of_other_slices_needs_no_code_change uses others.
PARENT = "integration-orchestrator-rollout"
SLICES = (
    "integration-safety-gates",
    "integration-events-model",
    "integrator-shadow-mode",
    "integrator-cutover",
    "integration-blocked-flow",
)
ROLLOUT = (PARENT, *SLICES)

GOOD_ROADMAP = f"""\
- slug: {PARENT}
  description: the parent
  slices: [{", ".join(SLICES)}]
- slug: {SLICES[0]}
  group: {PARENT}
- slug: {SLICES[1]}
  group: {PARENT}
  after: {SLICES[0]}
- slug: {SLICES[2]}
  group: {PARENT}
  after: {SLICES[1]}
- slug: {SLICES[3]}
  group: {PARENT}
  after: [{SLICES[2]}]
- slug: {SLICES[4]}
  group: {PARENT}
  after: {SLICES[3]}
"""

REQUIREMENTS = """\
# Requirements

1. Something real.

## Traceability

| Requirement | Delivered by | Verified by |
|---|---|---|
| 1 | `integrator/thing.py::deliver` | `tests/test_thing.py` |
"""


def state(status: str = "pass", build: str = "pending", review: str = "pending", blockers: str = "[]") -> str:
    return f"dor:\n  status: {status}\n  score: 8\n  blockers: {blockers}\nbuild: {build}\nreview: {review}\n"


@pytest.fixture(autouse=True)
def _no_ambient_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No integrator.toml from the developer's shell or the working directory leaks into a test."""
    monkeypatch.delenv("INTEGRATOR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def todos(tmp_path: Path) -> Path:
    """A project whose roadmap, slices and traced code satisfy every rule; safety-gates delivered."""
    project = tmp_path / "project"
    (project / "integrator").mkdir(parents=True)
    (project / "integrator" / "thing.py").write_text("async def deliver() -> None:\n    pass\n")
    (project / "tests").mkdir()
    (project / "tests" / "test_thing.py").write_text("def test_thing() -> None:\n    assert True\n")
    root = project / "todos"
    root.mkdir()
    (root / "roadmap.yaml").write_text(GOOD_ROADMAP)
    (root / "delivered.yaml").write_text(f"- slug: {SLICES[0]}\n  evidence: tests/test_thing.py\n")
    for slug in ROLLOUT:
        folder = root / slug
        folder.mkdir()
        (folder / "requirements.md").write_text(REQUIREMENTS)
        (folder / "implementation-plan.md").write_text("- [ ] build it\n")
        (folder / "demo.md").write_text("```bash\nintegrator demo\n```\n")
        (folder / "state.yaml").write_text(state())
    (root / SLICES[0] / "state.yaml").write_text(state(build="done", review="approved"))
    return root


def problems_of(root: Path) -> list[Problem]:
    return validate(load_rollout(root))


def rules(problems: list[Problem], severity: str = "error") -> list[str]:
    return [p.rule for p in problems if p.severity == severity]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def set_state(root: Path, slug: str, **kwargs: str) -> None:
    (root / slug / "state.yaml").write_text(state(**kwargs))


# --- the good tree and this repository -----------------------------------------------------------


def test_good_tree_has_no_problems(todos: Path) -> None:
    assert problems_of(todos) == []
    result = invoke("rollout", "validate", "--todos", str(todos))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK:")
    assert "6 entries" in result.output and "1 delivered" in result.output


def test_this_repository_todos_pass() -> None:
    result = invoke("rollout", "validate", "--todos", str(PROJECT / "todos"))
    assert result.exit_code == 0, result.output
    loaded = load_rollout(PROJECT / "todos")
    assert [e.slug for e in loaded.roadmap or ()][:6] == list(ROLLOUT)
    # Delivered slices are held to their traces: each traced path exists.
    for slug in loaded.delivered_slugs:
        assert all(t.path_exists for t in loaded.docs[slug].traces), slug


# --- roadmap rules ---------------------------------------------------------------------------------


def test_duplicate_slug(todos: Path) -> None:
    append(todos / "roadmap.yaml", f"- slug: {SLICES[2]}\n  group: {PARENT}\n  after: {SLICES[1]}\n")
    problems = problems_of(todos)
    assert rules(problems) == ["duplicate"]
    assert problems[0].line == 18
    assert "first at line 9" in problems[0].message


def test_after_target_must_exist(todos: Path) -> None:
    append(todos / "roadmap.yaml", "- slug: extra\n  after: no-such-slice\n")
    problems = problems_of(todos)
    assert rules(problems) == ["after-unknown"]
    assert "no-such-slice" in problems[0].message
    result = invoke("rollout", "validate", "--todos", str(todos))
    assert result.exit_code == 2
    assert "roadmap.yaml:18: error [after-unknown]" in result.output


def test_after_target_may_be_delivered_only(todos: Path) -> None:
    append(todos / "delivered.yaml", "- slug: old-work\n")
    append(todos / "roadmap.yaml", "- slug: extra\n  after: old-work\n")
    assert problems_of(todos) == []


def test_entry_before_its_dependency(todos: Path) -> None:
    append(todos / "roadmap.yaml", "- slug: second\n  after: first\n- slug: first\n")
    problems = problems_of(todos)
    assert rules(problems) == ["order"]
    assert "second comes before first" in problems[0].message


def test_cycle_is_reported_once_not_as_order(todos: Path) -> None:
    append(todos / "roadmap.yaml", "- slug: a\n  after: c\n- slug: b\n  after: a\n- slug: c\n  after: b\n")
    problems = problems_of(todos)
    assert rules(problems) == ["cycle"]
    assert problems[0].message == "dependency cycle: a -> c -> b -> a"


def test_self_dependency_is_a_cycle(todos: Path) -> None:
    append(todos / "roadmap.yaml", "- slug: loop\n  after: loop\n")
    assert rules(problems_of(todos)) == ["cycle"]


def test_find_cycles_ignores_targets_outside_the_graph() -> None:
    assert find_cycles({"a": ["b", "z"], "b": ["a"], "c": ["a"]}) == [("a", "b", "a")]
    assert find_cycles({"a": [], "b": ["a"]}) == []


def test_foreign_followup_entries_are_accepted(todos: Path) -> None:
    # What integrator/followup.py appends at runtime: not part of the rollout chain.
    append(
        todos / "roadmap.yaml",
        "- slug: feature-x-integration-blocked\n  group: feature-x\n  description: |\n    blocked\n"
        f"- slug: {SLICES[3]}-integration-blocked\n  group: {SLICES[3]}\n  description: conflict\n",
    )
    (todos / "feature-x-integration-blocked").mkdir()
    (todos / "feature-x-integration-blocked" / "state.yaml").write_text("anything: goes\n")
    assert problems_of(todos) == []


def test_roadmap_after_the_real_followup_writer_still_passes(todos: Path) -> None:
    from integrator.followup import write_followup

    before = (todos / "roadmap.yaml").read_text()
    write_followup(
        todos,
        slug="feature-x",
        branch="feature/x",
        sha="a" * 40,
        reason_code="verify_failed",
        evidence={"command_line": "pytest", "exit_status": 1, "log_tail": "1 failed"},
        next_action="fix the test",
        main_sha="b" * 40,
        blocked_at="2026-01-01T00:00:00.000000+00:00",
        remote="origin",
        main_branch="main",
    )
    text = (todos / "roadmap.yaml").read_text()
    assert text.startswith(before) and "feature-x-integration-blocked" in text
    assert problems_of(todos) == []
    statuses = slice_statuses(load_rollout(todos))
    assert [s.slug for s in statuses if not s.rollout] == ["feature-x-integration-blocked"]


def test_long_followup_slug_is_accepted(todos: Path) -> None:
    slug = "a" * 64 + "-integration-blocked"
    append(todos / "roadmap.yaml", f"- slug: {slug}\n  group: {'a' * 64}\n")
    assert problems_of(todos) == []


# --- FR1: the five slices, their order, chain and group -----------------------------------------


def test_missing_slice(todos: Path) -> None:
    text = (todos / "roadmap.yaml").read_text()
    cut = text.index(f"- slug: {SLICES[4]}")
    (todos / "roadmap.yaml").write_text(text[:cut])
    problems = problems_of(todos)
    assert rules(problems) == ["FR1.1"]
    assert SLICES[4] in problems[0].message


def test_a_roadmap_that_declares_no_rollout(todos: Path) -> None:
    text = (todos / "roadmap.yaml").read_text()
    (todos / "roadmap.yaml").write_text(text.replace(f"  slices: [{', '.join(SLICES)}]\n", ""))
    problems = problems_of(todos)
    assert rules(problems) == ["FR1.1"]
    assert "no entry declares a rollout" in problems[0].message


def test_slices_out_of_order(todos: Path) -> None:
    (todos / "roadmap.yaml").write_text(
        f"""\
- slug: {PARENT}
  slices: [{", ".join(SLICES)}]
- slug: {SLICES[0]}
  group: {PARENT}
- slug: {SLICES[2]}
  group: {PARENT}
  after: {SLICES[0]}
- slug: {SLICES[1]}
  group: {PARENT}
  after: {SLICES[0]}
- slug: {SLICES[3]}
  group: {PARENT}
  after: {SLICES[2]}
- slug: {SLICES[4]}
  group: {PARENT}
  after: {SLICES[3]}
"""
    )
    problems = problems_of(todos)
    assert "FR1.1" in rules(problems)
    fr11 = next(p for p in problems if p.rule == "FR1.1")
    assert f"{SLICES[2]} must come after {SLICES[1]}" in fr11.message
    # The skipped link shows up as a chain problem too.
    assert any(p.rule == "FR1.3" and SLICES[2] in p.message for p in problems)


def test_slice_without_its_predecessor(todos: Path) -> None:
    text = (todos / "roadmap.yaml").read_text()
    (todos / "roadmap.yaml").write_text(text.replace(f"  after: [{SLICES[2]}]\n", ""))
    problems = problems_of(todos)
    assert rules(problems) == ["FR1.3", "FR1.2", "FR1.2"]
    assert f"{SLICES[3]} must have after: {SLICES[2]}" in problems[0].message
    # The later slice keeps its own link but no longer reaches the safety gates.
    assert SLICES[4] in problems[2].message


def test_first_slice_must_not_wait_for_another_slice(todos: Path) -> None:
    text = (todos / "roadmap.yaml").read_text()
    (todos / "roadmap.yaml").write_text(
        text.replace(
            f"- slug: {SLICES[0]}\n  group: {PARENT}\n",
            f"- slug: {SLICES[0]}\n  group: {PARENT}\n  after: {PARENT}\n",
        )
    )
    problems = problems_of(todos)
    assert rules(problems)[0] == "FR1.2"
    assert f"{SLICES[0]} is the first slice and must not wait for {PARENT}" in problems[0].message


def test_child_group(todos: Path) -> None:
    text = (todos / "roadmap.yaml").read_text()
    (todos / "roadmap.yaml").write_text(
        text.replace(f"- slug: {SLICES[1]}\n  group: {PARENT}\n", f"- slug: {SLICES[1]}\n  group: other\n")
    )
    problems = problems_of(todos)
    assert rules(problems) == ["group"]
    assert problems[0].line == 6


# --- a rollout is data: other names, other artifacts, several rollouts ----------------------------

OTHER_ROADMAP = """\
- slug: launch
  slices: [alpha, beta, gamma]
  artifacts:
    required: [spec.md]
    recommended: []
- slug: alpha
  group: launch
- slug: beta
  group: launch
  after: alpha
- slug: gamma
  group: launch
  after: [beta]
"""


@pytest.fixture
def other(tmp_path: Path) -> Path:
    """A rollout this code has never heard of, whose todos need only a spec.md and a gate."""
    root = tmp_path / "elsewhere" / "todos"
    root.mkdir(parents=True)
    (root / "roadmap.yaml").write_text(OTHER_ROADMAP)
    for slug in ("launch", "alpha", "beta", "gamma"):
        (root / slug).mkdir()
        (root / slug / "spec.md").write_text("what to build\n")
        (root / slug / "state.yaml").write_text(state())
    return root


def test_a_rollout_of_other_slices_needs_no_code_change(other: Path) -> None:
    assert problems_of(other) == []
    assert [(p.parent, p.slices) for p in load_rollout(other).plans] == [
        ("launch", ("alpha", "beta", "gamma"))
    ]
    result = invoke("rollout", "validate", "--todos", str(other))
    assert result.exit_code == 0, result.output
    assert "4 entries" in result.output
    rows = slice_statuses(load_rollout(other))
    assert [(r.slug, r.rollout) for r in rows] == [
        ("launch", True),
        ("alpha", True),
        ("beta", True),
        ("gamma", True),
    ]


def test_the_declared_artifacts_are_the_draft(other: Path) -> None:
    (other / "beta" / "spec.md").write_text(" \n")
    problems = problems_of(other)
    assert [(p.rule, p.message) for p in problems] == [("draft", "beta: the draft needs a non-empty spec.md")]
    shutil.rmtree(other / "gamma")
    problems = problems_of(other)
    assert (
        problems[-1].message
        == "gamma is active but has no folder: it needs spec.md and state.yaml before it may be built"
    )


def test_a_recommended_artifact_is_a_warning_named_for_it(other: Path) -> None:
    text = (other / "roadmap.yaml").read_text().replace("recommended: []", "recommended: [notes.md]")
    (other / "roadmap.yaml").write_text(text)
    problems = problems_of(other)
    assert [(p.severity, p.rule) for p in problems] == [("warning", "notes")] * 4
    assert problems[0].message == "launch: no notes.md (the roadmap recommends one)"


def test_the_declared_order_is_the_rule(other: Path) -> None:
    text = (other / "roadmap.yaml").read_text().replace("[alpha, beta, gamma]", "[alpha, gamma, beta]")
    (other / "roadmap.yaml").write_text(text)
    problems = problems_of(other)
    assert rules(problems) == ["FR1.1", "FR1.3", "FR1.3"]
    assert problems[0].message == "beta must come after gamma (rollout order: launch, alpha, gamma, beta)"
    assert problems[1].message == "gamma must have after: alpha (it depends on the prior slice)"


def test_two_rollouts_are_each_held_to_their_chain(other: Path, todos: Path) -> None:
    roadmap = (todos / "roadmap.yaml").read_text() + OTHER_ROADMAP.replace("  after: [beta]\n", "")
    (todos / "roadmap.yaml").write_text(roadmap)
    for slug in ("launch", "alpha", "beta", "gamma"):
        shutil.copytree(other / slug, todos / slug)
    problems = problems_of(todos)
    assert [(p.rule, p.message.split(" (")[0]) for p in problems] == [
        ("FR1.3", "gamma must have after: beta"),
        ("FR1.2", "gamma does not depend"),
    ]
    assert {s for p in load_rollout(todos).plans for s in p.todos} == {
        *ROLLOUT,
        "launch",
        "alpha",
        "beta",
        "gamma",
    }


def test_a_slice_belongs_to_one_rollout(other: Path) -> None:
    (other / "roadmap.yaml").write_text(OTHER_ROADMAP + "- slug: relaunch\n  slices: [beta]\n")
    (other / "relaunch").mkdir()
    (other / "relaunch" / "state.yaml").write_text(state())
    problems = [p for p in problems_of(other) if p.rule == "schema"]
    assert [p.message for p in problems] == ["relaunch: slices lists beta, already a todo of launch"]
    assert problems[0].line == 14


@pytest.mark.parametrize(
    ("entry", "line", "message"),
    [
        (
            "  slices: alpha\n",
            2,
            "launch: slices must be a non-empty list of slugs in build order, got 'alpha'",
        ),
        ("  slices: []\n", 2, "launch: slices must be a non-empty list of slugs in build order, got []"),
        (
            "  slices: [Alpha]\n",
            2,
            "launch: slices[0] 'Alpha' must match [a-z0-9][a-z0-9-]* (at most 128 characters)",
        ),
        ("  artifacts: spec.md\n", 2, "launch: artifacts must be a mapping {required, recommended}"),
        (
            "  artifacts:\n    required: [../spec.md]\n",
            3,
            "launch: artifacts.required must be a list of file names",
        ),
        ("  probes: mode\n", 2, "launch: probes must be a list of probe names, got 'mode'"),
    ],
)
def test_a_malformed_declaration_is_one_clear_schema_error(
    other: Path, entry: str, line: int, message: str
) -> None:
    (other / "roadmap.yaml").write_text(f"- slug: launch\n{entry}" + OTHER_ROADMAP.split("\n", 5)[5])
    problems = problems_of(other)
    schema = [p for p in problems if p.rule == "schema"]
    assert len(schema) == 1 and schema[0].severity == "error", problems
    assert schema[0].message.startswith(message)
    assert schema[0].line == line
    result = invoke("rollout", "validate", "--todos", str(other))
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_an_unknown_key_in_the_declaration_is_a_warning_at_its_line(other: Path) -> None:
    text = (
        (other / "roadmap.yaml")
        .read_text()
        .replace("    recommended: []\n", "    recommended: []\n    optional: [x.md]\n")
    )
    (other / "roadmap.yaml").write_text(text)
    problems = problems_of(other)
    assert [(p.severity, p.rule, p.line) for p in problems] == [("warning", "schema", 6)]
    assert problems[0].message == "launch: unknown key 'artifacts.optional' (known: recommended, required)"


# --- drafts and gates ------------------------------------------------------------------------------


def test_active_slice_needs_a_non_empty_plan(todos: Path) -> None:
    (todos / SLICES[2] / "implementation-plan.md").write_text("  \n")
    problems = problems_of(todos)
    assert rules(problems) == ["draft"]
    assert problems[0].file == todos.resolve() / SLICES[2] / "implementation-plan.md"


def test_active_slice_without_a_folder(todos: Path) -> None:
    for name in ("requirements.md", "implementation-plan.md", "demo.md", "state.yaml"):
        (todos / SLICES[3] / name).unlink()
    (todos / SLICES[3]).rmdir()
    problems = problems_of(todos)
    assert rules(problems) == ["draft"]
    assert "has no folder" in problems[0].message


def test_delivered_slice_needs_no_draft(todos: Path) -> None:
    (todos / SLICES[0] / "implementation-plan.md").unlink()
    assert problems_of(todos) == []


def test_missing_gate(todos: Path) -> None:
    (todos / SLICES[1] / "state.yaml").unlink()
    problems = problems_of(todos)
    assert rules(problems) == ["gate"]
    assert "state.yaml is missing" in problems[0].message


def test_failing_gate_blocks_the_build_only(todos: Path) -> None:
    set_state(todos, SLICES[1], status="fail", blockers="[open question]")
    assert problems_of(todos) == []  # not dispatched yet: fine
    set_state(todos, SLICES[1], status="fail", build="in_progress", blockers="[open question]")
    problems = problems_of(todos)
    assert rules(problems) == ["gate"]
    assert problems[0].line == 5  # the build line
    result = invoke("rollout", "validate", "--todos", str(todos))
    assert result.exit_code == 2
    assert "build is in_progress but the gate fails" in result.output


def test_passing_gate_with_blockers(todos: Path) -> None:
    set_state(todos, SLICES[1], blockers="[waiting on store schema]")
    assert rules(problems_of(todos)) == ["gate"]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (state(build="started"), 5, "build must be one of pending, in_progress, done"),
        (state(review="lgtm"), 6, "review must be one of"),
        (state(status="maybe"), 2, "dor.status must be one of pass, fail"),
        ("dor:\n  status: pass\n  score: 11\nbuild: pending\nreview: pending\n", 3, "dor.score"),
        ("dor: pass\nbuild: pending\nreview: pending\n", 1, "dor must be a mapping"),
        ("- not a mapping\n", 1, "must be a mapping"),
    ],
)
def test_invalid_state_values(todos: Path, text: str, line: int, fragment: str) -> None:
    (todos / SLICES[1] / "state.yaml").write_text(text)
    problems = [p for p in problems_of(todos) if p.severity == "error"]
    assert [p.rule for p in problems] == ["gate"]
    assert problems[0].line == line
    assert fragment in problems[0].message


def test_review_approved_before_build_done(todos: Path) -> None:
    set_state(todos, SLICES[1], build="in_progress", review="approved")
    assert rules(problems_of(todos)) == ["review"]


def test_slices_may_be_built_in_parallel_but_not_finished_out_of_order(todos: Path) -> None:
    set_state(todos, SLICES[1], build="in_progress")
    set_state(todos, SLICES[2], build="in_progress")
    assert problems_of(todos) == []
    set_state(todos, SLICES[2], build="done")
    problems = problems_of(todos)
    assert rules(problems) == ["progression"]
    assert f"before {SLICES[1]} is complete" in problems[0].message
    set_state(todos, SLICES[1], build="done")
    assert problems_of(todos) == []


def test_delivered_slice_must_be_done_and_approved(todos: Path) -> None:
    set_state(todos, SLICES[0], build="done", review="pending")
    problems = problems_of(todos)
    assert rules(problems) == ["delivered"]
    assert "needs done / approved" in problems[0].message


def test_delivered_before_its_dependency(todos: Path) -> None:
    append(todos / "delivered.yaml", f"- slug: {SLICES[1]}\n")
    set_state(todos, SLICES[1], build="done", review="approved")
    assert problems_of(todos) == []  # safety-gates, its dependency, is delivered
    append(todos / "delivered.yaml", f"- {SLICES[3]}\n")
    set_state(todos, SLICES[3], build="done", review="approved")
    problems = problems_of(todos)
    assert rules(problems) == ["progression"]
    assert problems[0].file.name == "delivered.yaml" and problems[0].line == 4


def test_duplicate_in_delivered(todos: Path) -> None:
    append(todos / "delivered.yaml", f"- slug: {SLICES[0]}\n")
    assert rules(problems_of(todos)) == ["duplicate"]


# --- traceability ----------------------------------------------------------------------------------


def test_missing_traced_path_warns_while_building(todos: Path) -> None:
    (todos.parent / "tests" / "test_thing.py").unlink()
    problems = problems_of(todos)
    # The delivered slice (safety-gates) is held to it: an error; the active ones only warn.
    assert rules(problems) == ["trace"]
    assert next(p for p in problems if p.severity == "error").file.parent.name == SLICES[0]
    assert rules(problems, "warning") == ["trace"] * (len(ROLLOUT) - 1)


def test_warnings_alone_pass_unless_strict(todos: Path) -> None:
    (todos / SLICES[2] / "demo.md").unlink()
    assert rules(problems_of(todos), "warning") == ["demo"]
    assert invoke("rollout", "validate", "--todos", str(todos)).exit_code == 0
    strict = invoke("rollout", "validate", "--todos", str(todos), "--strict")
    assert strict.exit_code == 2
    assert "warning [demo]" in strict.output


def test_traced_symbol_must_be_defined(todos: Path) -> None:
    (todos.parent / "integrator" / "thing.py").write_text("def something_else() -> None:\n    pass\n")
    problems = problems_of(todos)
    assert rules(problems) == ["trace"]  # the delivered slice
    assert "integrator/thing.py::deliver is not defined" in problems[0].message


def test_done_slice_needs_its_traced_paths(todos: Path) -> None:
    (todos / SLICES[1] / "requirements.md").write_text(REQUIREMENTS + "| 2 | `integrator/later.py` | - |\n")
    assert rules(problems_of(todos), "warning") == ["trace"]
    set_state(todos, SLICES[1], build="done")
    problems = problems_of(todos)
    assert rules(problems) == ["trace"]
    assert "integrator/later.py does not exist" in problems[0].message


def test_missing_path_is_reported_once_per_slice(todos: Path) -> None:
    extra = "| 2 | `integrator/gone.py::a`, `integrator/gone.py::b` | `integrator/gone.py` |\n"
    (todos / SLICES[1] / "requirements.md").write_text(REQUIREMENTS + extra)
    problems = problems_of(todos)
    assert [p.message for p in problems] == ["traced path integrator/gone.py does not exist"]


def test_root_option_locates_traced_paths(todos: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "todos"
    shutil.copytree(todos, elsewhere)
    # By default traces are relative to the todos directory's parent, where nothing was built.
    result = invoke("rollout", "validate", "--todos", str(elsewhere))
    assert result.exit_code == 2
    assert "traced path integrator/thing.py does not exist" in result.output
    result = invoke("rollout", "validate", "--todos", str(elsewhere), "--root", str(todos.parent))
    assert result.exit_code == 0, result.output


def test_parse_traces_reads_only_the_traceability_section() -> None:
    text = (
        "# R\n`integrator/outside.py`\n## Traceability\n"
        "| x | `integrator/a.py::f`, `tests/b.py` | `integrator rollout validate` |\n"
        "### Notes inside\n`docs/c.md`\n## Next\n`integrator/after.py`\n"
    )
    assert parse_traces(text) == [("integrator/a.py::f", 4), ("tests/b.py", 4), ("docs/c.md", 6)]


# --- malformed input -------------------------------------------------------------------------------


def test_malformed_roadmap_yaml(todos: Path) -> None:
    (todos / "roadmap.yaml").write_text("- slug: a\n  after: [b\n- slug: c\n")
    problems = problems_of(todos)
    assert [p.rule for p in problems if p.file.name == "roadmap.yaml"] == ["yaml"]
    assert problems[0].line is not None
    result = invoke("rollout", "validate", "--todos", str(todos))
    assert result.exit_code == 2
    assert "roadmap.yaml" in result.output and "not valid YAML" in result.output


def test_roadmap_must_be_a_list(todos: Path) -> None:
    (todos / "roadmap.yaml").write_text("slices:\n  - a\n")
    problems = problems_of(todos)
    assert rules(problems) == ["yaml"]
    assert "must be a YAML list" in problems[0].message


def test_duplicate_key_is_malformed(todos: Path) -> None:
    (todos / SLICES[1] / "state.yaml").write_text(state() + "build: done\n")
    problems = problems_of(todos)
    # Unreadable is reported once, as such; not again as a missing gate.
    assert [p.rule for p in problems] == ["yaml"]
    assert "duplicate key" in problems[0].message


def test_bad_entries_are_schema_errors(todos: Path) -> None:
    bad = "- slug: Bad_Slug\n- just-a-string\n- slug: ok\n  after: {a: 1}\n  colour: red\n"
    append(todos / "roadmap.yaml", bad)
    problems = problems_of(todos)
    assert rules(problems) == ["schema", "schema", "schema"]
    assert rules(problems, "warning") == ["schema"]
    assert "unknown key 'colour'" in next(p.message for p in problems if p.severity == "warning")


def test_missing_roadmap(todos: Path) -> None:
    (todos / "roadmap.yaml").unlink()
    problems = problems_of(todos)
    assert rules(problems) == ["yaml"]
    assert "missing" in problems[0].message


def test_missing_todos_dir(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        load_rollout(tmp_path / "nope")
    result = invoke("rollout", "validate", "--todos", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "todos directory" in result.output and "does not exist" in result.output


# --- where the todos directory comes from ----------------------------------------------------------


def test_default_is_the_configured_todos_dir(todos: Path, tmp_path: Path) -> None:
    (tmp_path / "integrator.toml").write_text(f'repo = "{tmp_path}"\ntodos_dir = "{todos}"\n')
    result = invoke("rollout", "validate")
    assert result.exit_code == 0, result.output
    assert str(todos.resolve()) in result.output


def test_default_without_config_is_dot_todos(todos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(todos.parent)
    assert invoke("rollout", "validate").exit_code == 0
    monkeypatch.chdir(todos.parent / "integrator")
    result = invoke("rollout", "validate")
    assert result.exit_code == 2
    assert "todos directory todos does not exist" in result.output


def test_invalid_config_is_an_error_when_it_is_needed(tmp_path: Path) -> None:
    (tmp_path / "integrator.toml").write_text("repo = [1]\n")
    result = invoke("rollout", "validate")
    assert result.exit_code == 2
    assert "integrator.toml" in result.output


# --- status and live evidence ----------------------------------------------------------------------


def test_status_table_and_json(todos: Path) -> None:
    append(todos / "roadmap.yaml", "- slug: feature-x-integration-blocked\n  group: feature-x\n")
    result = invoke("rollout", "status", "--todos", str(todos))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["SLICE", "DELIVERED", "GATE", "BUILD", "REVIEW"]
    assert lines[2].split() == [SLICES[0], "yes", "pass", "8", "done", "approved"]
    assert "live evidence unavailable" in result.output
    assert lines[-1] == "validate: OK"

    data = json.loads(invoke("rollout", "status", "--todos", str(todos), "--json").output)
    assert [s["slug"] for s in data["slices"]] == [*ROLLOUT, "feature-x-integration-blocked"]
    foreign = data["slices"][-1]
    assert foreign["rollout"] is False and foreign["gate"] is None and foreign["group"] == "feature-x"
    assert data["problems"] == {"errors": 0, "warnings": 0}


def test_status_counts_problems(todos: Path) -> None:
    set_state(todos, SLICES[1], status="fail", build="in_progress")
    result = invoke("rollout", "status", "--todos", str(todos))
    assert result.exit_code == 0
    assert "validate: 1 error(s), 0 warning(s)" in result.output


def test_status_with_an_unreadable_roadmap_exits_2(todos: Path) -> None:
    (todos / "roadmap.yaml").write_text("- [\n")
    result = invoke("rollout", "status", "--todos", str(todos))
    assert result.exit_code == 2
    assert "not valid YAML" in result.output


def test_slice_statuses_keep_delivered_slices_off_the_roadmap(todos: Path) -> None:
    append(todos / "delivered.yaml", "- slug: archived-work\n")
    rows = slice_statuses(load_rollout(todos), {SLICES[0]: "fact"})
    assert rows[-1].slug == "archived-work" and rows[-1].delivered
    assert next(r for r in rows if r.slug == SLICES[0]).evidence == "fact"


def _repo_with_remote(tmp_path: Path) -> Path:
    env = {
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x.invalid",
    }
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    git.run_sync(["init", "-q", "--bare", "-b", "main", str(remote)], cwd=tmp_path, env=env)
    git.run_sync(["init", "-q", "-b", "main", str(work)], cwd=tmp_path, env=env)
    git.run_sync(["remote", "add", "origin", str(remote)], cwd=work, env=env)
    git.run_sync(["commit", "-q", "--allow-empty", "-m", "base"], cwd=work, env=env)
    git.run_sync(["push", "-q", "origin", "main"], cwd=work, env=env)
    git.run_sync(["fetch", "-q", "origin"], cwd=work, env=env)
    return work


def use_project_probes(todos: Path) -> None:
    """This repository's roadmap over the fixture's (same slugs): it names each slice's probes."""
    shutil.copy(PROJECT / "todos" / "roadmap.yaml", todos / "roadmap.yaml")


def test_live_evidence_without_the_store(todos: Path, tmp_path: Path) -> None:
    use_project_probes(todos)
    work = _repo_with_remote(tmp_path)
    state_dir = tmp_path / "state"
    cfg = build_config({"repo": str(work), "todos_dir": str(todos), "state_dir": str(state_dir)}, None)
    evidence = join_facts(live_facts(cfg, load_rollout(todos)))
    assert evidence[SLICES[0]] == f"gate on {work}: clean (as of the last fetch)"
    # No database: said once per store probe, and the store is not created by looking.
    assert evidence[SLICES[1]] == f"database {cfg.db}: absent (nothing emitted yet)"
    assert evidence[SLICES[2]] == "mode: shadow (configured; no database yet)"
    assert evidence[SLICES[3]] == (
        "mode: shadow (configured; no database yet); "
        f"hooks not installed (no install recorded in {state_dir / 'authority.json'})"
    )
    assert evidence[SLICES[4]] == "no follow-up todos"
    assert not cfg.db.exists()

    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "authority.json").write_text("[not json")
    (todos / "feature-x-integration-blocked").mkdir()
    (work / "dirty.txt").write_text("x")
    git.run_sync(["add", "dirty.txt"], cwd=work)
    evidence = join_facts(live_facts(cfg, load_rollout(todos)))
    assert evidence[SLICES[0]] == f"gate on {work}: checkout_dirty"
    assert evidence[SLICES[3]].endswith(
        f"{state_dir / 'authority.json'}: not readable JSON (JSONDecodeError); fix or remove it"
    )
    assert evidence[SLICES[4]] == "1 follow-up todo(s): feature-x-integration-blocked"


@pytest.fixture
def probe_table() -> Iterator[None]:
    """The test adds probes to the module's table: take them out again."""
    before = dict(PROBES)
    yield
    PROBES.clear()
    PROBES.update(before)


@pytest.mark.usefixtures("probe_table")
def test_evidence_hook_takes_store_probes_and_survives_a_broken_one(todos: Path, tmp_path: Path) -> None:
    use_project_probes(todos)
    text = (todos / "roadmap.yaml").read_text()
    (todos / "roadmap.yaml").write_text(
        text.replace("probes: [mode, parity]", "probes: [mode, queue-depth, broken]")
    )
    problems = problems_of(todos)
    assert rules(problems) == ["schema", "schema"]
    assert problems[0].message.startswith(
        f"{SLICES[2]}: unknown probe 'queue-depth' (known: blocked, events,"
    )

    def queue_depth(cfg: object) -> str:
        return "queue: 3 queued"

    def broken(cfg: object) -> str:
        raise RuntimeError("store locked")

    PROBES["queue-depth"] = queue_depth
    PROBES["broken"] = broken
    assert problems_of(todos) == []  # the names are known now
    cfg = build_config({"repo": str(tmp_path / "absent"), "todos_dir": str(todos)}, None)
    evidence = join_facts(live_facts(cfg, load_rollout(todos)))
    assert evidence[SLICES[2]] == (
        "mode: shadow (configured; no database yet); queue: 3 queued; "
        "probe broken failed: RuntimeError: store locked"
    )
    # A repository that is not there is evidence too, not a crash.
    assert evidence[SLICES[0]] == f"gate on {tmp_path / 'absent'}: git_state_unknown"


def test_status_shows_live_evidence_from_the_config(todos: Path, tmp_path: Path) -> None:
    use_project_probes(todos)
    work = _repo_with_remote(tmp_path)
    (tmp_path / "integrator.toml").write_text(f'repo = "{work}"\ntodos_dir = "{todos}"\n')
    result = invoke("rollout", "status")
    assert result.exit_code == 0, result.output
    assert f"evidence: gate on {work}: clean" in result.output
    assert "live evidence unavailable" not in result.output
