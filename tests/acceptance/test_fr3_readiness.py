"""FR3: the event-driven readiness contract, proven on real repositories through the real CLI."""

from __future__ import annotations

import itertools

import pytest
from conftest import cli, push_feature
from helpers import candidate, emit_cli, merged_candidates, run_once, status

from integrator.config import Config
from integrator.sandbox import Sandbox

EVENTS = ("review_approved", "branch_pushed", "finalize_ready")


@pytest.mark.parametrize("missing", ["review_approved", "branch_pushed"])
def test_fr3_1_the_three_events_are_the_readiness_signals(
    sandbox: Sandbox, config: Config, missing: str
) -> None:
    """Without any one of the three events a candidate is not ready; with all three it is queued."""
    feature = push_feature(sandbox, "feat", {"f.txt": "f\n"})
    emit_cli(config, feature, events=tuple(e for e in EVENTS if e != missing))
    waiting = candidate(config, "feat")
    assert waiting["status"] == "waiting"
    assert any(
        ("review_approved" if missing == "review_approved" else "branch_pushed") in r
        for r in waiting["reasons"]
    )
    assert status(config)["queue"] == []
    emit_cli(config, feature, events=(missing,))
    assert candidate(config, "feat")["status"] == "ready"
    assert [q["slug"] for q in status(config)["queue"]] == ["feat"]


def test_fr3_1_events_in_any_order_give_the_same_verdict(sandbox: Sandbox, config: Config) -> None:
    for n, order in enumerate(itertools.permutations(EVENTS)):
        feature = push_feature(sandbox, f"order-{n}", {f"o{n}.txt": "x\n"})
        for kind in order:
            emit_cli(config, feature, events=(kind,))
        assert candidate(config, f"order-{n}")["status"] == "ready", order


def test_fr3_2_branch_sha_alignment_and_reachability(sandbox: Sandbox, config: Config) -> None:
    """A branch that moved past the declared sha, or a sha the remote lacks, is not ready; reasons say why."""
    moved = push_feature(sandbox, "moved", {"m.txt": "1\n"})
    moved.worker.commit({"m.txt": "2\n"}, "later work")
    moved.worker.push(moved.branch)
    emit_cli(config, moved)
    verdict = candidate(config, "moved")
    assert verdict["status"] == "waiting"
    assert "branch_moved" in verdict["reason_codes"]

    local = push_feature(sandbox, "local", {"l.txt": "1\n"})
    unpushed = local.worker.commit({"l.txt": "2\n"}, "never pushed")
    local.sha = unpushed
    emit_cli(config, local)
    verdict = candidate(config, "local")
    assert "not_reachable" in verdict["reason_codes"]

    run_once(config)
    assert merged_candidates(sandbox) == []  # neither was integrated


def test_fr3_3_a_clean_worktree_is_not_a_readiness_signal(sandbox: Sandbox, config: Config) -> None:
    """A worker whose worktree went dirty -> clean, with its branch pushed, is not a candidate at all."""
    feature = push_feature(sandbox, "quiet", {"q.txt": "q\n"})
    (feature.worker.path / "scratch.txt").write_text("dirty\n")
    (feature.worker.path / "scratch.txt").unlink()  # clean again
    run_once(config)
    data = status(config)
    assert data["candidates"] == [] and data["queue"] == []
    assert merged_candidates(sandbox) == []
    # There is no such event: the CLI refuses it and stores nothing.
    bad = cli(
        config,
        "emit",
        "--wait",
        "--json",
        "-",
        input='{"type": "worktree_clean", "payload": {"branch": "feature/quiet"}}\n',
    )
    assert bad.returncode == 2
    assert "type" in bad.stderr
    assert cli(config, "events", "--json").stdout.strip() == "[]"
