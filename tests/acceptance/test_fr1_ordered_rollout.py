"""FR1 and verification 1-2: the rollout's own plan is ordered, gated and checked by the real CLI.

Also FR1.2 at run time: the safety gates (the first slice) hold before every integration.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import INTEGRATOR, make_config, push_feature
from helpers import emit_cli, merged_candidates, run_once, status
from ruamel.yaml import YAML

from integrator.rollout import load_rollout
from integrator.sandbox import Sandbox

PROJECT = Path(__file__).resolve().parents[2]
# The rollout as this repository's roadmap declares it (the validator knows no slice names).
_PLAN = load_rollout(PROJECT / "todos").plans[0]
PARENT, SLICES = _PLAN.parent, _PLAN.slices


def validate(todos: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [INTEGRATOR, "rollout", "validate", "--todos", str(todos), "--root", str(PROJECT)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def copy_todos(tmp_path: Path) -> Path:
    target = tmp_path / "todos"
    shutil.copytree(PROJECT / "todos", target)
    return target


def edit_roadmap(todos: Path, change) -> None:  # type: ignore[no-untyped-def]
    yaml = YAML()
    path = todos / "roadmap.yaml"
    data = yaml.load(path.read_text())
    change(data)
    with path.open("w") as fh:
        yaml.dump(data, fh)


def test_v1_fr1_1_roadmap_encodes_the_five_slices_in_order() -> None:
    result = validate(PROJECT / "todos")
    assert result.returncode == 0, result.stdout + result.stderr
    slugs = [entry["slug"] for entry in YAML().load((PROJECT / "todos" / "roadmap.yaml").read_text())]
    rollout = [s for s in slugs if s in (PARENT, *SLICES)]
    assert rollout == [PARENT, *SLICES]
    assert SLICES[0] == "integration-safety-gates" and len(SLICES) == 5


def test_fr1_1_a_reordered_roadmap_is_refused(tmp_path: Path) -> None:
    todos = copy_todos(tmp_path)
    edit_roadmap(todos, lambda data: data.insert(2, data.pop(4)))  # cutover before the events model
    result = validate(todos)
    assert result.returncode == 2
    assert "order" in result.stdout + result.stderr


def test_fr1_3_each_slice_depends_on_the_prior(tmp_path: Path) -> None:
    todos = copy_todos(tmp_path)
    edit_roadmap(todos, lambda data: next(e for e in data if e["slug"] == "integrator-cutover").pop("after"))
    result = validate(todos)
    assert result.returncode == 2
    assert "FR1.3" in result.stdout + result.stderr


def test_fr1_2_safety_gates_are_a_prerequisite_in_the_plan(tmp_path: Path) -> None:
    """A later slice may not be done while the safety gates are neither delivered nor done."""
    todos = copy_todos(tmp_path)
    (todos / "delivered.yaml").write_text("[]\n")
    gates = todos / "integration-safety-gates" / "state.yaml"
    gates.write_text(
        gates.read_text()
        .replace("build: done", "build: in_progress")
        .replace("review: approved", "review: pending")
    )
    later = todos / "integration-events-model" / "state.yaml"
    later.write_text(later.read_text().replace("build: in_progress", "build: done"))
    result = validate(todos)
    assert result.returncode == 2
    assert "progression" in result.stdout + result.stderr


def test_v2_an_active_slice_without_its_draft_is_refused(tmp_path: Path) -> None:
    todos = copy_todos(tmp_path)
    # Every slice is delivered (a delivered slice needs no draft): reopen the last one, as in progress.
    slice_ = "integration-blocked-flow"
    delivered = YAML().load((todos / "delivered.yaml").read_text())
    with (todos / "delivered.yaml").open("w") as fh:
        YAML().dump([d for d in delivered if d["slug"] != slice_], fh)
    state = todos / slice_ / "state.yaml"
    state.write_text(
        state.read_text()
        .replace("build: done", "build: in_progress")
        .replace("review: approved", "review: pending")
    )
    assert validate(todos).returncode == 0  # reopened with its draft: fine
    (todos / slice_ / "requirements.md").unlink()
    result = validate(todos)
    assert result.returncode == 2
    assert slice_ in result.stdout and "draft" in result.stdout


def test_fr1_2_safety_gates_hold_before_every_integration(tmp_path: Path, sandbox: Sandbox) -> None:
    """A dirty canonical checkout stops integration (nothing pushed, candidate kept), until it is clean."""
    # Without automatic rollback: three failed gates in a row would otherwise (rightly) return to shadow.
    config = make_config(tmp_path, sandbox, rollback={"enabled": False})
    feature = push_feature(sandbox, "gated", {"g.txt": "g\n"})
    emit_cli(config, feature)
    readme = sandbox.integrator_repo / "README.md"
    original = readme.read_text()
    readme.write_text("someone edited the canonical checkout\n")
    result = subprocess.run(
        [INTEGRATOR, "--config", str(config.config_path), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "checkout_dirty" in result.stderr
    data = status(config)
    assert "checkout_dirty" in data["fault"]["message"]
    assert [q["slug"] for q in data["queue"]] == ["gated"]
    assert merged_candidates(sandbox) == []
    readme.write_text(original)
    run_once(config)
    assert merged_candidates(sandbox) == [feature.sha]
