"""Bad input and faults (issue 5): an unreachable remote, locked repositories, a hung git, main moving
between merge and push, a branch moving after finalize_ready.

Infrastructure faults are the machine's problem, not the candidate's: it stays queued (never lost,
never blocked), the runner backs off and says so in ``status`` (``fault``), and it lands once the
fault is gone. The real :class:`Runner` runs in-process against real repositories; the automatic
rollback on repeated faults is switched off here so that only the fault handling is under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from conftest import (
    Feature,
    async_wait_for,
    cli,
    db_rows,
    emit_ready,
    make_config,
    push_feature,
    run_once,
)
from support import killpoints

from integrator import git
from integrator.config import Config
from integrator.runner import Runner
from integrator.sandbox import Sandbox
from integrator.service import Integrator

NO_ROLLBACK = {"rollback": {"enabled": False}}


def outcomes(cfg: Config, kind: str) -> list[dict[str, Any]]:
    found = db_rows(cfg, "SELECT payload FROM events WHERE type = ? ORDER BY seq", (kind,))
    return [json.loads(r["payload"]) for r in found]


def queue_of(cfg: Config, slug: str) -> sqlite3.Row:
    return db_rows(
        cfg,
        "SELECT q.status, q.attempts, c.status AS cand FROM queue q JOIN candidates c ON c.id = q.candidate_id"
        " WHERE c.slug = ?",
        (slug,),
    )[0]


@contextlib.asynccontextmanager
async def running(cfg: Config) -> AsyncIterator[Integrator]:
    """``integrator run`` in this event loop; leaving the block stops it the way SIGTERM does."""
    integ = await Integrator.open(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(Runner(cfg, integ.store).run(stop))
    try:
        yield integ
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await integ.close()


async def fault_of(integ: Integrator) -> dict[str, Any] | None:
    fault: dict[str, Any] | None = (await integ.status()).model_dump()["fault"]
    return fault


def landed(sandbox: Sandbox, feature: Feature) -> bool:
    return f"Candidate-Sha: {feature.sha}" in "\n".join(sandbox.main_log("%B"))


async def wait_landed(cfg: Config, sandbox: Sandbox, feature: Feature) -> None:
    await async_wait_for(lambda: queue_of(cfg, feature.slug)["status"] == "integrated", timeout=15)
    assert landed(sandbox, feature)


async def test_unreachable_remote_keeps_the_candidate_queued_and_reports_the_fault(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, **NO_ROLLBACK)
    feature = push_feature(sandbox, "patient", {"p.txt": "p\n"})
    await emit_ready(cfg, feature)
    away = sandbox.remote.with_name("remote.away")
    sandbox.remote.rename(away)
    async with running(cfg) as integ:
        fault = await async_wait_for(lambda: fault_of(integ))
        assert "does not appear to be a git repository" in fault["message"], fault
        # As the operator sees it, from another process.
        shown = json.loads(cli(cfg, "status", "--json").stdout)["fault"]
        assert shown["kind"] == "git" and shown["streak"] >= 1
        row = queue_of(cfg, "patient")
        assert (row["status"], row["cand"]) == ("queued", "ready")
        away.rename(sandbox.remote)
        await wait_landed(cfg, sandbox, feature)
        assert await fault_of(integ) is None  # cleared by the next success
    assert outcomes(cfg, "integration_blocked") == []


async def test_a_locked_ref_on_the_remote_requeues_instead_of_blocking(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """The push fails on the remote's ``main.lock``: git reports it as a rejection, yet it is a fault."""
    cfg = make_config(tmp_path, sandbox, **NO_ROLLBACK)
    feature = push_feature(sandbox, "locked-out", {"l.txt": "l\n"})
    await emit_ready(cfg, feature)
    lock = sandbox.remote / "refs" / "heads" / "main.lock"
    lock.touch()
    async with running(cfg) as integ:
        fault = await async_wait_for(lambda: fault_of(integ))
        assert "lock" in fault["message"]
        row = await async_wait_for(lambda: (r := queue_of(cfg, "locked-out"))["status"] == "queued" and r)
        assert row["attempts"] >= 1  # it was taken, failed on the push, and was put back
        reasons = [
            r["reason"] for r in db_rows(cfg, "SELECT reason FROM transitions WHERE to_status = 'queued'")
        ]
        assert any(r.startswith("infrastructure fault") for r in reasons)
        lock.unlink()
        await wait_landed(cfg, sandbox, feature)
    assert outcomes(cfg, "integration_blocked") == []
    assert len(outcomes(cfg, "integration_completed")) == 1


async def test_locked_integrator_repository(tmp_path: Path, sandbox: Sandbox) -> None:
    """``index.lock`` does not matter (the merge is plumbing, no index); a locked remote-tracking ref
    stops the fetch, which is retried until the lock is gone. Someone works in the clone meanwhile, so
    the holder's start-up recovery (which removes locks left by a crash) leaves both locks alone."""
    cfg = make_config(tmp_path, sandbox, **NO_ROLLBACK)
    feature = push_feature(sandbox, "ref-locked", {"r.txt": "r\n"})
    await emit_ready(cfg, feature)
    legacy = sandbox.worker("legacy")
    legacy.start("main")
    legacy.commit({"legacy.txt": "l\n"}, "legacy change")
    legacy.push("main")  # so the next fetch must update origin/main
    git_dir = sandbox.integrator_repo / ".git"
    (git_dir / "index.lock").touch()
    ref_lock = git_dir / "refs" / "remotes" / "origin" / "main.lock"
    ref_lock.touch()
    someone = subprocess.Popen(["sleep", "600"], cwd=sandbox.integrator_repo)
    try:
        async with running(cfg) as integ:
            fault = await async_wait_for(lambda: fault_of(integ))
            assert "cannot lock ref" in fault["message"], fault
            assert queue_of(cfg, "ref-locked")["status"] == "queued"
            ref_lock.unlink()
            await wait_landed(cfg, sandbox, feature)
    finally:
        someone.kill()
        someone.wait()
    assert (git_dir / "index.lock").exists()
    assert outcomes(cfg, "integration_blocked") == []


async def test_a_hung_fetch_times_out_as_a_fault(tmp_path: Path, sandbox: Sandbox) -> None:
    cfg = make_config(tmp_path, sandbox, git_timeout_s=0.5, **NO_ROLLBACK)
    feature = push_feature(sandbox, "hung-fetch", {"h.txt": "h\n"})
    await emit_ready(cfg, feature)
    repo = sandbox.integrator_repo
    # The local transport runs this through the shell: the remote side does not answer for 20 s, and
    # the shell and its sleep (git's children) hold git's output pipes open all that time.
    git.run_sync(["config", "remote.origin.uploadpack", "sleep 20; git-upload-pack"], cwd=repo)
    async with running(cfg) as integ:
        started = time.monotonic()
        fault = await async_wait_for(lambda: fault_of(integ), timeout=10)
        assert "timed out" in fault["message"]
        # Bounded by the timeout, not by the helpers: they are killed with git.
        assert time.monotonic() - started < 3
        assert queue_of(cfg, "hung-fetch")["status"] == "queued"
        git.run_sync(["config", "--unset", "remote.origin.uploadpack"], cwd=repo)
        await wait_landed(cfg, sandbox, feature)


def move_main_command(sandbox: Sandbox, counter: Path, *, times: int) -> str:
    """A shell command that pushes a new commit to main from a worker clone, the first ``times`` calls."""
    w = sandbox.worker("mover").path
    q = shlex.quote
    return (
        f"n=$(cat {q(str(counter))} 2>/dev/null || echo 0); [ $n -ge {times} ] && exit 0; "
        f"echo $((n + 1)) > {q(str(counter))}; cd {q(str(w))} && git fetch -q origin && "
        f"git reset -q --hard origin/main && echo $n > moved-$n.txt && git add moved-$n.txt && "
        f"git commit -q -m moved-$n && git push -q origin HEAD:refs/heads/main"
    )


async def test_main_moved_before_the_push_is_refetched_and_retried(tmp_path: Path, sandbox: Sandbox) -> None:
    cfg = make_config(tmp_path, sandbox)
    feature = push_feature(sandbox, "raced", {"raced.txt": "r\n"})
    await emit_ready(cfg, feature)
    initial = sandbox.main_sha()
    counter = tmp_path / "moves"
    mover = killpoints.probe(before_push=move_main_command(sandbox, counter, times=1))

    await run_once(cfg, probe=mover)

    assert counter.read_text().strip() == "1"
    merge, moved, first = sandbox.main_log("%H")
    assert first == initial
    assert sandbox.main_log("%P")[0].split() == [moved, feature.sha]  # merged again on the moved main
    [done] = outcomes(cfg, "integration_completed")
    assert (done["main_before"], done["merge_sha"]) == (moved, merge)
    assert queue_of(cfg, "raced")["attempts"] == 1  # retried inside one attempt, not requeued


async def test_main_moving_every_time_blocks_with_push_rejected_after_the_retry_limit(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, push_retries=2)
    feature = push_feature(sandbox, "starved", {"s.txt": "s\n"})
    await emit_ready(cfg, feature)
    counter = tmp_path / "moves"
    mover = killpoints.probe(before_push=move_main_command(sandbox, counter, times=100))

    await run_once(cfg, probe=mover)

    assert counter.read_text().strip() == "3"  # the first try and two retries
    assert not landed(sandbox, feature)
    assert len(sandbox.main_log()) == 4  # initial + the three foreign pushes, nothing of ours
    [blocked] = outcomes(cfg, "integration_blocked")
    assert (blocked["reason_code"], blocked["evidence"]["retries"]) == ("push_rejected", 2)
    assert "stale info" in blocked["evidence"]["stderr"]
    assert queue_of(cfg, "starved")["status"] == "blocked"


async def test_a_branch_moved_after_finalize_ready_is_never_merged_at_its_new_tip(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox)
    feature = push_feature(sandbox, "moving", {"m.txt": "1\n"})
    await emit_ready(cfg, feature)
    newer = feature.worker.commit({"m.txt": "2\n"}, "after finalize")
    feature.worker.push(feature.branch)
    main = sandbox.main_sha()

    await run_once(cfg)

    assert sandbox.main_sha() == main
    [blocked] = outcomes(cfg, "integration_blocked")
    assert (blocked["reason_code"], blocked["sha"]) == ("branch_moved", feature.sha)
    assert blocked["evidence"]["branch_tip"] == newer


async def test_ancestor_policy_merges_the_pinned_sha_not_the_tip(tmp_path: Path, sandbox: Sandbox) -> None:
    cfg = make_config(tmp_path, sandbox, branch_policy="ancestor")
    feature = push_feature(sandbox, "pinned", {"p.txt": "1\n"})
    await emit_ready(cfg, feature)
    newer = feature.worker.commit({"p.txt": "2\n"}, "after finalize")
    feature.worker.push(feature.branch)

    await run_once(cfg)

    assert sandbox.main_log("%P")[0].split()[1] == feature.sha
    not_merged = git.run_sync(
        ["merge-base", "--is-ancestor", newer, "refs/heads/main"], cwd=sandbox.remote, check=False
    )
    assert not_merged.returncode == 1
    assert [d["sha"] for d in outcomes(cfg, "integration_completed")] == [feature.sha]
