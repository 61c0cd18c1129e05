"""Crash safety: SIGKILL the real ``integrator run --once`` at each phase, then restart it.

The fault injection is test-only wiring: ``killpoints.KILL_AT=<phase>`` through the wrapper
``tests/support/killpoints.py``, which installs a phase probe and runs the real CLI. The process kills itself right after writing that phase's checkpoint (or, for ``recorded``, right after
the outcome's transaction). A second ``integrator run --once`` without the variable must settle
everything: no candidate lost, none pushed twice, and ``main`` a valid first-parent history whose
every merge is a completed candidate.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from conftest import Feature, cli, db_rows, emit_ready, make_config, push_feature, wait_for
from support import killpoints
from support.killpoints import BEFORE_PUSH, KILL_AT, PROBE_LOG, STOP_AT

from integrator import git
from integrator.checkpoint import PHASES
from integrator.config import Config
from integrator.sandbox import Sandbox

# Short lease: the restarted process waits for the dead holder's lease to expire.
LEASE = {"lease_ttl_s": 1.0, "lease_renew_s": 0.25}


def first_parent_merges(sandbox: Sandbox) -> list[tuple[str, list[str], str]]:
    """(commit, parents, Candidate-Sha trailer) for each commit on main's first-parent chain, newest first."""
    out = git.run_sync(
        [
            "log",
            "--first-parent",
            "--format=%H%x00%P%x00%(trailers:key=Candidate-Sha,valueonly,separator=%x2C)%x1e",
            "refs/heads/main",
            "--",
        ],
        cwd=sandbox.remote,
    ).stdout
    found = []
    for record in out.split("\x1e"):
        if not record.strip():
            continue
        commit, parents, trailer = record.strip("\n").split("\x00")
        found.append((commit, parents.split(), trailer.strip()))
    return found


def assert_consistent(sandbox: Sandbox, cfg: Config, features: list[Feature]) -> None:
    """The crash-safety invariants, checked on the bare remote and the database."""
    git.run_sync(["fsck", "--connectivity-only", "--no-progress"], cwd=sandbox.remote)
    history = first_parent_merges(sandbox)
    merges = [(c, p, t) for c, p, t in history if t]
    trailers = Counter(t for _, _, t in merges)
    assert all(n == 1 for n in trailers.values()), f"a candidate was pushed twice: {trailers}"
    assert set(trailers) == {f.sha for f in features}
    for commit, parents, trailer in merges:
        # The pinned sha, never a branch tip: it is the merge's second parent.
        assert parents[1] == trailer, (commit, parents)
    # Everything else on main is the initial commit: nothing partial, nothing foreign.
    assert len(history) == len(merges) + 1

    completed = [
        json.loads(r["payload"])
        for r in db_rows(cfg, "SELECT payload FROM events WHERE type = ?", ("integration_completed",))
    ]
    per_sha = Counter(p["sha"] for p in completed)
    assert per_sha == Counter({f.sha: 1 for f in features}), per_sha
    on_main = {t: c for c, _, t in merges}
    for p in completed:
        assert p["merge_sha"] == on_main[p["sha"]]
        assert p["duration_ms"] >= 0
    statuses = {
        r["sha"]: r["status"]
        for r in db_rows(
            cfg, "SELECT c.sha, q.status FROM queue q JOIN candidates c ON c.id = q.candidate_id"
        )
    }
    assert statuses == {f.sha: "integrated" for f in features}
    assert db_rows(cfg, "SELECT * FROM checkpoints") == []
    assert db_rows(cfg, "SELECT * FROM events WHERE type = 'integration_blocked'") == []


@pytest.mark.parametrize("phase", PHASES)
async def test_sigkill_at_each_phase_then_restart_settles_everything(
    tmp_path: Path, sandbox: Sandbox, phase: str
) -> None:
    cfg = make_config(tmp_path, sandbox, **LEASE)
    first = push_feature(sandbox, "crash-a", {"a.txt": "a\n"})
    second = push_feature(sandbox, "crash-b", {"b.txt": "b\n"})
    await emit_ready(cfg, first, second)
    initial = sandbox.main_sha()

    killed = cli(cfg, "run", "--once", probe={KILL_AT: phase})
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)

    # The kill happened where it was asked to: main is pushed only from the `pushed` phase on.
    pushed = phase in ("pushed", "recorded")
    assert (sandbox.main_sha() != initial) is pushed
    fencing = db_rows(cfg, "SELECT fencing FROM leases")[0]["fencing"]
    checkpoints = db_rows(cfg, "SELECT phase, fencing, data FROM checkpoints")
    status = {
        r["sha"]: r["status"]
        for r in db_rows(
            cfg, "SELECT c.sha, q.status FROM queue q JOIN candidates c ON c.id = q.candidate_id"
        )
    }
    assert status[second.sha] == "queued"
    if phase == "recorded":
        assert status[first.sha] == "integrated"
        assert checkpoints == []
    else:
        assert status[first.sha] == "in_progress"
        # A checkpoint written before the side effect, carrying the holder's fencing token.
        assert [(c["phase"], c["fencing"]) for c in checkpoints] == [(phase, fencing)]
        if phase in ("merged", "tested", "pushed"):
            assert json.loads(checkpoints[0]["data"])["main_before"] == initial

    restarted = cli(cfg, "run", "--once")
    assert restarted.returncode == 0, restarted.stderr
    assert_consistent(sandbox, cfg, [first, second])
    # The restart took the lease with a new fencing token, and only the killed one was recovered.
    assert db_rows(cfg, "SELECT fencing FROM leases")[0]["fencing"] == fencing + 1
    recovered = db_rows(
        cfg, "SELECT reason, fencing FROM transitions WHERE reason LIKE 'recovered after a crash%'"
    )
    if phase in ("recorded", "pushed"):
        assert recovered == []
    else:
        assert [(r["reason"], r["fencing"]) for r in recovered] == [
            (f"recovered after a crash in phase {phase}", fencing + 1)
        ]


async def test_sigkill_after_squash_push_is_recorded_once(tmp_path: Path, sandbox: Sandbox) -> None:
    """Squash commits have one parent, so recovery must find them by the checkpoint's merge sha."""
    cfg = make_config(tmp_path, sandbox, merge_strategy="squash", **LEASE)
    feature = push_feature(sandbox, "squashed", {"s.txt": "s\n"})
    await emit_ready(cfg, feature)
    killed = cli(cfg, "run", "--once", probe={KILL_AT: "pushed"})
    assert killed.returncode == -signal.SIGKILL
    landed = sandbox.main_sha()
    restarted = cli(cfg, "run", "--once")
    assert restarted.returncode == 0, restarted.stderr
    assert sandbox.main_sha() == landed
    history = first_parent_merges(sandbox)
    assert [(p, t) for _, p, t in history[:1]] == [([history[1][0]], feature.sha)]
    assert len(history) == 2
    completed = db_rows(cfg, "SELECT payload FROM events WHERE type = 'integration_completed'")
    assert [json.loads(r["payload"])["merge_sha"] for r in completed] == [landed]


async def test_the_installed_cli_ignores_the_test_switches(tmp_path: Path, sandbox: Sandbox) -> None:
    """Only the wrapper under tests/ acts on them: the real console script integrates as usual."""
    cfg = make_config(tmp_path, sandbox, **LEASE)
    feature = push_feature(sandbox, "plain", {"p.txt": "p\n"})
    await emit_ready(cfg, feature)
    hook_ran = tmp_path / "hook-ran"
    switches = {KILL_AT: "merged", BEFORE_PUSH: f"touch {hook_ran}"}
    result = cli(cfg, "run", "--once", env=switches)
    assert result.returncode == 0, result.stderr
    assert not hook_ran.exists()
    assert_consistent(sandbox, cfg, [feature])
    product = [Path(__file__).parents[2] / d for d in ("integrator", "bot", "teleclaude")]
    readers = [p for d in product for p in d.rglob("*.py") if "INTEGRATOR_TEST_" in p.read_text()]
    assert readers == []


async def test_the_wrapper_freezes_the_real_cli_at_a_named_phase(tmp_path: Path, sandbox: Sandbox) -> None:
    """``STOP_AT`` + ``PROBE_LOG``: a frozen holder, found by the log instead of a sleep (for fencing tests)."""
    cfg = make_config(tmp_path, sandbox, **LEASE)
    feature = push_feature(sandbox, "frozen", {"f.txt": "f\n"})
    await emit_ready(cfg, feature)
    initial = sandbox.main_sha()
    log = tmp_path / "phases.log"
    env = {**os.environ, STOP_AT: "merged", PROBE_LOG: str(log)}
    argv = [*killpoints.command("integrator"), "--config", str(cfg.config_path), "run", "--once"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: log.exists() and "merged" in log.read_text(), what="phase merged")
        state = wait_for(
            lambda: Path(f"/proc/{proc.pid}/stat").read_text().split()[2] == "T", what="a stopped process"
        )
        assert state and proc.poll() is None
        assert [line.split()[0] for line in log.read_text().splitlines()] == [
            "dequeued",
            "verified_ready",
            "merged",
        ]
        assert sandbox.main_sha() == initial  # frozen before the push
    finally:
        proc.kill()
        proc.wait()
    assert cli(cfg, "run", "--once").returncode == 0
    assert_consistent(sandbox, cfg, [feature])
