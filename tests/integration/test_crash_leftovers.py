"""A hard crash leaves nothing that stops the next run (issue 13 items 4 and 5): the runner's whole
process group is SIGKILLed for real, and the next ``run --once`` proceeds without a manual step.

Representative stages here; ``bench/kill.py`` loops over random ones (``tests/support/killing.py``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from conftest import cli, db_rows, emit_ready, make_config, push_feature
from support.killing import kill_round

from integrator import recovery
from integrator.config import Config
from integrator.sandbox import Sandbox


def test_sigkill_of_the_runner_group_during_verify_kills_the_leaked_verify_at_the_next_start(
    tmp_path: Path,
) -> None:
    result = kill_round(tmp_path, "verify")
    assert result.hit and result.leaked_verify  # the verify outlived the runner, until the next start


def _forget_verify_pids(cfg: Config) -> None:
    records = sorted((cfg.state_dir / recovery.RECORDS).glob("*.json"))
    assert records, "the killed runner left no verify record"
    for path in records:
        data = json.loads(path.read_text())
        assert data.pop("pid") and data.pop("stamp")
        path.write_text(json.dumps(data))


def test_a_verify_whose_pid_the_killed_runner_had_not_noted_yet_is_killed_at_the_next_start(
    tmp_path: Path,
) -> None:
    """The record is written before the command starts and its pid after: a SIGKILL in between leaves a
    record without a pid (made here by removing it after a real kill). The verify still works in the
    recorded tree, and the next start kills it by that."""
    result = kill_round(tmp_path, "verify", after_kill=_forget_verify_pids)
    assert result.hit and result.leaked_verify


@pytest.mark.parametrize("stage", ["fetch", "push"])
def test_sigkill_of_the_whole_process_tree_during_git_leaves_nothing(tmp_path: Path, stage: str) -> None:
    kill_round(tmp_path, stage, tree=True)


LOCKS = (
    "objects/info/commit-graphs/commit-graph-chain.lock",
    "index.lock",
    "packed-refs.lock",
    "refs/remotes/origin/main.lock",
)


async def test_git_locks_left_by_a_killed_git_are_removed_and_the_run_proceeds(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox)
    feature = push_feature(sandbox, "after-crash", {"c.txt": "c\n"})
    await emit_ready(cfg, feature)
    gitdir = sandbox.integrator_repo / ".git"
    for name in LOCKS:
        (gitdir / name).parent.mkdir(parents=True, exist_ok=True)
        (gitdir / name).write_text("")
    res = cli(cfg, "run", "--once")
    assert res.returncode == 0, res.stderr
    assert [r["status"] for r in db_rows(cfg, "SELECT status FROM queue")] == ["integrated"]
    assert list(gitdir.rglob("*.lock")) == []
    assert "event=clone_recovered" in res.stderr and "locks_removed=4" in res.stderr
    assert db_rows(cfg, "SELECT * FROM settings WHERE key = 'mode'") == []  # never rolled back


async def test_a_lock_is_kept_while_a_live_process_works_in_the_clone(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox)
    lock = sandbox.integrator_repo / ".git" / "index.lock"
    lock.write_text("")
    someone = subprocess.Popen(["sleep", "600"], cwd=sandbox.integrator_repo)
    try:
        report = await recovery.recover_clone(sandbox.integrator_repo, cfg.state_dir, timeout=30)
        assert report["locks_removed"] == 0 and lock.exists()
    finally:
        someone.kill()
        someone.wait()
    report = await recovery.recover_clone(sandbox.integrator_repo, cfg.state_dir, timeout=30)
    assert report["locks_removed"] == 1 and not lock.exists()


def test_a_worktree_left_under_the_state_dir_is_removed(tmp_path: Path, sandbox: Sandbox) -> None:
    cfg = make_config(tmp_path, sandbox)
    leftover = cfg.state_dir / "verify-old" / "tree"
    leftover.parent.mkdir(parents=True)
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(leftover), "HEAD"],
        cwd=sandbox.integrator_repo,
        check=True,
    )
    report = asyncio.run(recovery.recover_clone(sandbox.integrator_repo, cfg.state_dir, timeout=30))
    assert report["worktrees_removed"] == 1
    listing = subprocess.run(
        ["git", "worktree", "list", "--porcelain"],
        cwd=sandbox.integrator_repo,
        capture_output=True,
        text=True,
    ).stdout
    assert listing.count("worktree ") == 1 and not leftover.parent.exists()
