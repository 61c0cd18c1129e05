"""Faults are blamed on who caused them (issue 12 item 2), through the real CLI in cutover.

A candidate whose own content makes git fail (a file name too long to check out, one ending in
``index.lock``, a blob too big to fetch within the timeout) is blocked with evidence and the queue
moves on: no infrastructure fault is recorded and the mode stays cutover. Only the remote failing
for main counts, and one candidate faulting again and again is blocked after a bounded number of takes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import Feature, as_json, cli, db_rows, emit_ready, make_config, ok, push_feature

from integrator import git
from integrator.sandbox import Sandbox
from integrator.workflow import MAX_FAULTED_ATTEMPTS

ROLLBACK_AT_ONE = {"rollback": {"enabled": True, "on_stall": False, "infra_failure_limit": 1}}


def commit_with_path(sandbox: Sandbox, slug: str, path: str) -> Feature:
    """A worker commits a file at ``path`` with plumbing (no checkout needed) and pushes the branch."""
    w = sandbox.worker(slug)
    branch = f"feature/{slug}"
    w.start(branch)
    blob = git.run_sync(["hash-object", "-w", "--stdin"], cwd=w.path, input_text="x\n").stdout.strip()
    git.run_sync(["update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"], cwd=w.path)
    git.run_sync(["commit", "-q", "-m", f"{slug}: hostile path"], cwd=w.path)
    w.push(branch)
    return Feature(slug, branch, w.head(), w)


def assert_blocked_not_faulted(cfg_status: dict[str, object], slug: str) -> dict[str, object]:
    assert cfg_status["mode"] == "cutover"
    assert cfg_status["fault"] is None
    [entry] = [b for b in cfg_status["blocked"] if b["slug"] == slug]  # type: ignore[attr-defined]
    assert entry["reason_code"] == "git_error"
    return entry


async def test_paths_that_cannot_be_checked_out_block_their_candidate_and_the_queue_moves_on(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, verify_command=["true"], **ROLLBACK_AT_ONE)
    too_long = commit_with_path(sandbox, "too-long", "a" * 300)
    lock = commit_with_path(sandbox, "lock-name", "b" * 270 + "index.lock")
    plain_lock = commit_with_path(sandbox, "plain-lock", "sub/index.lock")  # harmless: it integrates
    good = push_feature(sandbox, "good", {"good.txt": "g\n"})
    await emit_ready(cfg, too_long, lock, plain_lock, good)

    result = cli(cfg, "run", "--once")

    assert result.returncode == 0, result.stderr
    status = as_json(cfg, "status")
    for feature in (too_long, lock):
        entry = assert_blocked_not_faulted(status, feature.slug)
        evidence = entry["evidence"]
        assert evidence["stage"] == "checkout" and "checkout-index" in evidence["command_line"]
        assert "File name too long" in evidence["stderr"]
    trailers = [t for t in sandbox.main_log("%(trailers:key=Candidate-Sha,valueonly)") if t]
    assert trailers == [good.sha, plain_lock.sha]
    assert db_rows(cfg, "SELECT * FROM faults") == []


async def test_a_blob_too_big_to_fetch_in_time_blocks_its_candidate_not_the_mode(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """1 GiB of zeros packs to a few MB but takes longer than the timeout to index; it is blamed on the
    candidate (main fetched alone still works), written straight into the remote to save the push."""
    cfg = make_config(tmp_path, sandbox, git_timeout_s=1.5, **ROLLBACK_AT_ONE)
    bare, main = sandbox.remote, sandbox.main_sha()
    made = subprocess.run(
        f"head -c {1 << 30} /dev/zero | git hash-object -w --stdin",
        shell=True,
        cwd=bare,
        capture_output=True,
        text=True,
        check=True,
    )
    blob = made.stdout.strip()
    tree = git.run_sync(["mktree"], cwd=bare, input_text=f"100644 blob {blob}\tzeros\n").stdout.strip()
    sha = git.run_sync(["commit-tree", "-p", main, "-m", "huge", tree], cwd=bare).stdout.strip()
    git.run_sync(["update-ref", "refs/heads/feature/huge", sha], cwd=bare)
    huge = Feature("huge", "feature/huge", sha, sandbox.worker("huge"))
    good = push_feature(sandbox, "small", {"s.txt": "s\n"})
    await emit_ready(cfg, huge, good)

    result = cli(cfg, "run", "--once")

    assert result.returncode == 0, result.stderr
    status = as_json(cfg, "status")
    evidence = assert_blocked_not_faulted(status, "huge")["evidence"]
    assert evidence["stage"] == "fetch" and "timed out" in evidence["error"]
    assert "feature/huge" in evidence["command_line"]
    trailers = [t for t in sandbox.main_log("%(trailers:key=Candidate-Sha,valueonly)") if t]
    assert trailers == [good.sha]
    assert db_rows(cfg, "SELECT * FROM faults") == []


async def test_a_candidate_faulting_on_every_take_is_blocked_after_a_bound(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """The remote refuses every push of main for a reason that is not the hook's (a broken receive-pack
    on main): infrastructure faults, counted, until the candidate has had its bounded takes."""
    cfg = make_config(tmp_path, sandbox, rollback={"enabled": False})
    feature = push_feature(sandbox, "unlucky", {"u.txt": "u\n"})
    await emit_ready(cfg, feature)
    hook = sandbox.remote / "hooks" / "update"
    hook.write_text('#!/bin/sh\n[ "$1" = refs/heads/main ] && kill -9 $PPID\nexit 0\n')
    hook.chmod(0o755)

    for _ in range(MAX_FAULTED_ATTEMPTS + 1):
        cli(cfg, "run", "--once")
        if as_json(cfg, "status")["blocked"]:
            break
    status = as_json(cfg, "status")
    [entry] = status["blocked"]
    assert entry["reason_code"] == "git_error" and entry["evidence"]["stage"] == "push"
    assert entry["evidence"]["attempts"] == MAX_FAULTED_ATTEMPTS
    assert len(db_rows(cfg, "SELECT * FROM faults")) == MAX_FAULTED_ATTEMPTS - 1
    assert status["mode"] == "cutover"
    ok(cfg, "status")
