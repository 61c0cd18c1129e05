"""Shadow parity on what the legacy path really does: squash and rebase landings with the branch
deleted, a merge edited by hand, a branch deleted without landing, and main moving under a prediction.
"""

from __future__ import annotations

from pathlib import Path

from conftest import cli, db_rows, emit_ready, make_config, push_feature
from test_shadow import g, legacy_commit, legacy_merge, predictions, report, shadow_once, statuses

from integrator.sandbox import Sandbox


def _delete_branch(sandbox: Sandbox, branch: str) -> None:
    g(sandbox.remote, "update-ref", "-d", f"refs/heads/{branch}")


async def test_squash_and_rebase_landings_with_deleted_branches_are_decided_and_the_gate_can_pass(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, mode="shadow", gate={"min_decided": 3, "min_agreement": 0.95})
    squashed = push_feature(sandbox, "squashed", {"s1.txt": "one\n"})
    squashed_tip = squashed.worker.commit({"s2.txt": "two\n"}, "squashed: second")
    squashed.worker.push(squashed.branch)
    squashed.sha = squashed_tip
    rebased = push_feature(sandbox, "rebased", {"r.txt": "r\n"})
    merged = push_feature(sandbox, "merged", {"m.txt": "m\n"})
    legacy_commit(sandbox, {"other.txt": "main moves first\n"}, "legacy: unrelated")
    await emit_ready(cfg, squashed, rebased, merged)
    await shadow_once(cfg)
    assert {p["actual"] for p in predictions(cfg).values()} == {None}

    # The legacy path: a squash of two commits, a rebase (new shas), a plain merge; branches deleted.
    w = sandbox.worker("legacy")
    w.start("main")
    g(w.path, "merge", "--squash", "-q", squashed.sha)
    g(w.path, "commit", "-q", "-m", "squashed (#1)")
    g(w.path, "cherry-pick", rebased.sha)
    w.push("main")
    _delete_branch(sandbox, squashed.branch)
    _delete_branch(sandbox, rebased.branch)
    legacy_merge(sandbox, merged.sha)
    await shadow_once(cfg)

    found = predictions(cfg)
    assert (found["squashed"]["actual"], found["rebased"]["actual"], found["merged"]["actual"]) == (
        "landed_elsewhere",
        "landed_elsewhere",
        "clean",
    )
    assert statuses(cfg) == {s: ("integrated", "integrated") for s in ("squashed", "rebased", "merged")}
    parity = report(cfg)
    assert parity["by_actual"] == {"landed_elsewhere": 2, "clean": 1}
    assert (parity["decided"], parity["agreements"], parity["stuck"]) == (3, 3, [])
    assert parity["gate"]["verdict"] == "pass", parity["gate"]


async def test_a_merge_edited_by_hand_is_landed_with_changes_and_a_disagreement(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, mode="shadow", gate={"min_decided": 1, "min_agreement": 0.95})
    edited = push_feature(sandbox, "edited", {"lib.txt": "a\nb\nc\n", "keep.txt": "k\n"})
    await emit_ready(cfg, edited)
    await shadow_once(cfg)
    w = sandbox.worker("legacy")
    w.start("main")
    g(w.path, "merge", "--no-ff", "--no-commit", "-q", edited.sha)
    (w.path / "lib.txt").write_text("a\nc\n")  # a line removed by hand in the merge commit
    g(w.path, "add", "lib.txt")
    g(w.path, "commit", "-q", "--no-edit")
    w.push("main")
    await shadow_once(cfg)

    parity = report(cfg)
    [d] = parity["disagreements"]
    assert (d["slug"], d["prediction"], d["actual"], d["changed_paths"]) == (
        "edited",
        "would_integrate",
        "landed_with_changes",
        ["lib.txt"],
    )
    assert parity["gate"]["verdict"] == "fail"
    text = cli(cfg, "shadow-report")
    assert "landed_with_changes" in text.stdout and "lib.txt" in text.stdout, text.stdout


async def test_a_branch_deleted_without_landing_is_withdrawn_and_main_moving_redoes_predictions(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, mode="shadow")
    abandoned = push_feature(sandbox, "abandoned", {"a.txt": "a\n"})
    waiting = push_feature(sandbox, "waiting", {"shared.txt": "candidate\n"})
    await emit_ready(cfg, abandoned, waiting)
    await shadow_once(cfg)
    first = predictions(cfg)["waiting"]
    assert first["prediction"] == "would_integrate"

    _delete_branch(sandbox, abandoned.branch)
    moved = legacy_commit(sandbox, {"shared.txt": "main\n"}, "legacy: conflicting")
    await shadow_once(cfg)

    assert statuses(cfg)["abandoned"] == ("superseded", "superseded")
    [event] = db_rows(cfg, "SELECT payload FROM events WHERE type = 'candidate_withdrawn'")
    assert "was deleted on origin" in event["payload"]
    again = predictions(cfg)["waiting"]
    assert (again["prediction"], again["main_sha"], again["conflicted_paths"]) == (
        "would_block",
        moved,
        ["shared.txt"],
    )
    assert report(cfg)["stuck"] == []
