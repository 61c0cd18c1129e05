"""The integrator runtime end to end (issue 5): the workflow's outcomes on real repositories, and the
``integrator run`` process itself: signals, the lease between two processes, the cross-process wake.

Workflow paths run the real :class:`Runner` in-process (real git, real SQLite); everything about
processes (signals, kill -9, a second runner, a wake from another process) runs the console script.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    INTEGRATOR,
    Feature,
    cli,
    db_rows,
    emit_ready,
    make_config,
    push_feature,
    readiness_events,
    run_once,
    wait_for,
)
from support import killpoints
from support.freezing import freeze_outside_a_write

from integrator import git
from integrator.config import Config
from integrator.events import Event
from integrator.sandbox import Sandbox
from integrator.service import Integrator

# --- helpers ----------------------------------------------------------------------------------------


def outcomes(cfg: Config, kind: str) -> list[dict[str, Any]]:
    return [
        json.loads(r["payload"])
        for r in db_rows(cfg, "SELECT payload FROM events WHERE type = ? ORDER BY seq", (kind,))
    ]


def queue_status(cfg: Config) -> dict[str, str]:
    return {
        r["slug"]: r["status"]
        for r in db_rows(
            cfg, "SELECT c.slug, q.status FROM queue q JOIN candidates c ON c.id = q.candidate_id"
        )
    }


async def emit(cfg: Config, events: list[Event]) -> list[dict[str, Any]]:
    async with await Integrator.open(cfg) as integ:
        return [c.model_dump() for c in (await integ.emit(events, wait=True)).candidates]


def show(sandbox: Sandbox, fmt: str, rev: str = "refs/heads/main") -> str:
    return git.run_sync(["show", "-s", f"--format={fmt}", rev, "--"], cwd=sandbox.remote).stdout.strip()


def g(cwd: Path, *args: str) -> str:
    return git.run_sync(args, cwd=cwd).stdout.strip()


# --- the workflow's outcomes ----------------------------------------------------------------------------


async def test_merge_commits_in_fifo_order_with_trailers_and_outcome_payload(
    sandbox: Sandbox, config: Config
) -> None:
    # A branch name that reads like an option: it must reach git only as data.
    first = push_feature(sandbox, "first", {"first.txt": "1\n"}, branch="feature/--force")
    second = push_feature(sandbox, "second", {"second.txt": "2\n"})
    await emit_ready(config, first, second)
    initial = sandbox.main_sha()

    await run_once(config)

    log = sandbox.main_log("%H %P")
    assert len(log) == 3
    merge2, m2_first, m2_second = log[0].split()
    merge1, m1_first, m1_second = log[1].split()
    assert (m1_first, m1_second) == (initial, first.sha)  # the pinned sha on the main it was merged on
    assert (m2_first, m2_second) == (merge1, second.sha)
    body = show(sandbox, "%B", merge1)
    assert f"Candidate-Slug: first\nCandidate-Sha: {first.sha}" in body
    assert "Integrated-By: teleclaude-integrator@" in body
    assert body.startswith("Merge feature/--force for first")

    done = outcomes(config, "integration_completed")
    assert [(d["slug"], d["merge_sha"], d["main_before"], d["main_after"]) for d in done] == [
        ("first", merge1, initial, merge1),
        ("second", merge2, merge1, merge2),
    ]
    assert all(isinstance(d["duration_ms"], int) and d["duration_ms"] >= 0 for d in done)
    assert queue_status(config) == {"first": "integrated", "second": "integrated"}
    trail = db_rows(
        config,
        "SELECT from_status, to_status, fencing FROM transitions t JOIN queue q ON q.id = t.queue_id"
        " JOIN candidates c ON c.id = q.candidate_id WHERE c.slug = 'first' ORDER BY t.id",
    )
    assert [(r["from_status"], r["to_status"]) for r in trail] == [
        (None, "queued"),
        ("queued", "in_progress"),
        ("in_progress", "integrated"),
    ]
    assert trail[-1]["fencing"] == 1
    # The worker's checkout is never touched: the integrator merged with plumbing in its own repository.
    assert g(first.worker.path, "rev-parse", "HEAD") == first.sha


async def test_squash_strategy_writes_one_parent_commit_with_the_merged_tree(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, merge_strategy="squash")
    feature = push_feature(sandbox, "squash-me", {"s.txt": "s\n"})
    feature.worker.commit({"s2.txt": "two\n"}, "second commit")
    feature.worker.push(feature.branch)
    tip = feature.worker.head()
    feature = Feature(feature.slug, feature.branch, tip, feature.worker)
    await emit_ready(cfg, feature)
    initial = sandbox.main_sha()
    expected_tree = g(sandbox.remote, "merge-tree", "--write-tree", initial, tip)

    await run_once(cfg)

    head = sandbox.main_sha()
    assert show(sandbox, "%P") == initial
    assert show(sandbox, "%T") == expected_tree
    assert f"Candidate-Sha: {tip}" in show(sandbox, "%B")
    assert show(sandbox, "%s").startswith("Integrate squash-me (")
    assert [d["merge_sha"] for d in outcomes(cfg, "integration_completed")] == [head]
    assert queue_status(cfg) == {"squash-me": "integrated"}


async def test_verify_runs_on_the_merged_tree_and_a_failure_blocks(tmp_path: Path, sandbox: Sandbox) -> None:
    seen = tmp_path / "seen"
    script = f"ls >> {seen}; echo ---- >> {seen}; if grep -q broken *.txt; then echo 'tests failed: broken'; exit 3; fi"
    # One verify at a time: both append to one file (the pipeline's concurrent verifies have their own tests).
    cfg = make_config(tmp_path, sandbox, verify_command=["sh", "-c", script], pipeline_depth=1)
    good = push_feature(sandbox, "good", {"good.txt": "fine\n"})
    bad = push_feature(sandbox, "bad", {"bad.txt": "broken\n"})
    await emit_ready(cfg, good, bad)

    await run_once(cfg)

    runs = seen.read_text().split("----\n")
    # The merged tree: main's files plus the candidate's (and, for the second, the first's merge).
    assert runs[0].split() == ["README.md", "good.txt"]
    assert runs[1].split() == ["README.md", "bad.txt", "good.txt"]
    assert queue_status(cfg) == {"good": "integrated", "bad": "blocked"}
    [blocked] = outcomes(cfg, "integration_blocked")
    assert blocked["reason_code"] == "verify_failed"
    assert blocked["evidence"]["exit_status"] == 3
    assert "tests failed: broken" in blocked["evidence"]["log_tail"]
    assert [d["slug"] for d in outcomes(cfg, "integration_completed")] == ["good"]
    assert f"Candidate-Sha: {bad.sha}" not in "\n".join(sandbox.main_log("%B"))
    # The throwaway worktrees are gone.
    assert g(sandbox.integrator_repo, "worktree", "list").count("\n") == 0


async def test_verify_timeout_blocks_and_a_long_verify_keeps_the_lease(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """A verify longer than the lease TTL still lands: git and the verify run off the event loop,
    so renewal keeps going. One that outlives ``verify_timeout_s`` is killed and blocks."""
    script = "if [ -f hung.txt ]; then sleep 30; else sleep 1.6; fi"
    cfg = make_config(
        tmp_path,
        sandbox,
        verify_command=["sh", "-c", script],
        verify_timeout_s=2.5,
        lease_ttl_s=0.8,
        lease_renew_s=0.15,
    )
    slow = push_feature(sandbox, "slow", {"slow.txt": "s\n"})
    hung = push_feature(sandbox, "hung", {"hung.txt": "h\n"})
    await emit_ready(cfg, slow, hung)
    started = time.monotonic()

    await run_once(cfg)

    assert time.monotonic() - started < 15
    assert queue_status(cfg) == {"slow": "integrated", "hung": "blocked"}
    [blocked] = outcomes(cfg, "integration_blocked")
    assert (blocked["reason_code"], blocked["evidence"]["timed_out"]) == ("verify_failed", True)
    assert db_rows(cfg, "SELECT fencing FROM leases")[0]["fencing"] == 1  # never lost, never re-taken


async def test_conflict_blocks_with_the_conflicted_paths(sandbox: Sandbox, config: Config) -> None:
    ours = push_feature(sandbox, "ours", {"shared.txt": "ours\n", "ours.txt": "o\n"})
    theirs = push_feature(sandbox, "theirs", {"shared.txt": "theirs\n", "sub/x.txt": "x\n"})
    await emit_ready(config, ours, theirs)

    await run_once(config)

    assert queue_status(config) == {"ours": "integrated", "theirs": "blocked"}
    [blocked] = outcomes(config, "integration_blocked")
    assert blocked["reason_code"] == "merge_conflict"
    assert blocked["evidence"]["conflicted_paths"] == ["shared.txt"]
    assert blocked["evidence"]["main"] == sandbox.main_sha()
    assert len(sandbox.main_log()) == 2  # only the first merge landed
    reason = db_rows(
        config,
        "SELECT block_reason, block_main FROM queue q JOIN candidates c ON c.id = q.candidate_id"
        " WHERE c.slug = 'theirs'",
    )[0]
    assert (reason["block_reason"], reason["block_main"]) == ("merge_conflict", sandbox.main_sha())


async def test_a_failed_merge_is_never_read_as_already_integrated(sandbox: Sandbox, config: Config) -> None:
    """An unrelated history cannot be merged at all (git writes no tree): that is a git error, never
    'nothing to merge'. A branch whose change main already has still gets its merge commit (the tree
    does not change, ancestry does): only an ancestor of main is already integrated."""
    w = sandbox.worker("orphan")
    g(w.path, "checkout", "--quiet", "--orphan", "feature/orphan")
    g(w.path, "rm", "-rf", "--quiet", ".")
    orphan_sha = w.commit({"other.txt": "unrelated\n"}, "an unrelated root")
    w.push("feature/orphan")
    orphan = Feature("orphan", "feature/orphan", orphan_sha, w)

    # The same change as a later legacy commit on main, made on another commit: merging it changes nothing.
    dup = push_feature(sandbox, "dup", {"dup.txt": "same\n"})
    legacy = sandbox.worker("legacy")
    legacy.start("main")
    legacy.commit({"dup.txt": "same\n"}, "legacy change")
    legacy.push("main")
    await emit_ready(config, orphan, dup)
    main = sandbox.main_sha()

    await run_once(config)

    assert queue_status(config) == {"orphan": "blocked", "dup": "integrated"}
    [blocked] = outcomes(config, "integration_blocked")
    assert blocked["reason_code"] == "git_error"
    assert "unrelated histories" in blocked["evidence"]["stderr"]
    [done] = outcomes(config, "integration_completed")
    assert (done["slug"], done["already_on_main"], done["main_before"]) == ("dup", False, main)
    landed = sandbox.main_sha()
    assert g(sandbox.remote, "rev-parse", f"{landed}^{{tree}}") == g(
        sandbox.remote, "rev-parse", f"{main}^{{tree}}"
    )
    assert g(sandbox.remote, "rev-list", "--parents", "-n", "1", landed).split()[1:] == [main, dup.sha]


async def test_a_newer_finalize_during_the_flight_supersedes_the_candidate_in_flight(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """The worker re-finalizes while the integrator is between merge and push and main moves: the
    retry's readiness re-check finds a newer candidate for the slug, records ``superseded`` (never
    the old sha), and the newer one lands next."""
    cfg = make_config(tmp_path, sandbox)
    old = push_feature(sandbox, "refined", {"r.txt": "1\n"})
    await emit_ready(cfg, old)
    new_sha = old.worker.commit({"r.txt": "2\n"}, "refined: round 2")  # pushed by the hook, mid-flight
    events = readiness_events(old.slug, old.branch, new_sha, round_=2)
    batch = tmp_path / "round2.ndjson"
    batch.write_text(
        "".join(json.dumps({"type": e.type, "payload": json.loads(e.payload_json())}) + "\n" for e in events)
    )
    mover = sandbox.worker("mover").path
    once = tmp_path / "hook-ran"
    hook = (
        f"[ -e {once} ] && exit 0; touch {once}; "
        f"git -C {old.worker.path} push -q origin HEAD:refs/heads/{old.branch} && "
        f"{INTEGRATOR} --config {cfg.config_path} emit --json - < {batch} > /dev/null && "
        f"cd {mover} && git fetch -q origin && git reset -q --hard origin/main && "
        f"git commit -q --allow-empty -m moved && git push -q origin HEAD:refs/heads/main"
    )
    await run_once(cfg, probe=killpoints.probe(before_push=hook))

    assert once.exists()
    [superseded] = outcomes(cfg, "superseded")
    assert (superseded["sha"], superseded["superseded_by"]) == (old.sha, new_sha)
    assert [d["sha"] for d in outcomes(cfg, "integration_completed")] == [new_sha]
    trailers = [t for t in sandbox.main_log("%(trailers:key=Candidate-Sha,valueonly)") if t]
    assert trailers == [new_sha]
    found = db_rows(
        cfg,
        "SELECT c.sha, c.status AS cand, q.status FROM queue q JOIN candidates c ON c.id = q.candidate_id",
    )
    assert {r["sha"]: (r["cand"], r["status"]) for r in found} == {
        old.sha: ("superseded", "superseded"),
        new_sha: ("integrated", "integrated"),
    }


# --- the process: signals, lease, wake ----------------------------------------------------------------


class Proc:
    """A background ``integrator run`` with its output in files (pipes could fill up and block it)."""

    def __init__(
        self, cfg: Config, tmp: Path, name: str, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.out = tmp / f"{name}.out"
        self.err = tmp / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.popen = subprocess.Popen(
                [INTEGRATOR, "--config", str(cfg.config_path), "run", "-v", *args],
                stdout=out,
                stderr=err,
                env={**os.environ, **(env or {})},
            )
        self.holder = f"{socket.gethostname()}:{self.popen.pid}"

    def wait(self, timeout: float = 20) -> int:
        return self.popen.wait(timeout)

    def stderr(self) -> str:
        return self.err.read_text()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        if p.popen.poll() is None:
            p.popen.kill()
            p.popen.wait(10)


def holder(cfg: Config) -> str | None:
    try:
        found = db_rows(cfg, "SELECT holder, expires_at FROM leases")
    except sqlite3.OperationalError:  # the runner has not created the database yet
        return None
    if not found or found[0]["holder"] is None or found[0]["expires_at"] <= time.time():
        return None
    return str(found[0]["holder"])


def status(cfg: Config) -> dict[str, Any]:
    res = cli(cfg, "status", "--json")
    assert res.returncode == 0, res.stderr
    data: dict[str, Any] = json.loads(res.stdout)
    return data


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_idle_releases_the_lease_and_exits_zero(
    tmp_path: Path, sandbox: Sandbox, config: Config, procs: list[Proc], sig: signal.Signals
) -> None:
    proc = Proc(config, tmp_path, "runner")
    procs.append(proc)
    wait_for(lambda: holder(config) == proc.holder)
    assert status(config)["lease"]["holder"] == proc.holder
    proc.popen.send_signal(sig)
    assert proc.wait() == 0, proc.stderr()
    assert status(config)["lease"] is None
    assert db_rows(config, "SELECT holder, token FROM leases")[0][:] == (None, None)


def test_sigterm_mid_candidate_finishes_the_phase_then_exits_zero(
    tmp_path: Path, sandbox: Sandbox, procs: list[Proc]
) -> None:
    started = tmp_path / "verify-started"
    cfg = make_config(tmp_path, sandbox, verify_command=["sh", "-c", f"touch {started}; sleep 3"])
    feature = push_feature(sandbox, "in-flight", {"f.txt": "f\n"})
    asyncio.run(emit_ready(cfg, feature))
    proc = Proc(cfg, tmp_path, "runner")
    procs.append(proc)
    wait_for(started.exists)
    # The verify runs between merged and tested (a loaded machine may read status a moment late).
    wait_for(lambda: (status(cfg)["in_flight"] or {}).get("phase") == "merged", what="phase merged")
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.stderr()
    # It finished the candidate it held rather than leaving it half done, then let go.
    assert queue_status(cfg) == {"in-flight": "integrated"}
    assert f"Candidate-Sha: {feature.sha}" in "\n".join(sandbox.main_log("%B"))
    assert db_rows(cfg, "SELECT * FROM checkpoints") == []
    assert holder(cfg) is None


def test_a_standby_runner_takes_over_within_the_ttl_after_kill_9(
    tmp_path: Path, sandbox: Sandbox, procs: list[Proc]
) -> None:
    ttl = 2.0
    cfg = make_config(tmp_path, sandbox, lease_ttl_s=ttl, lease_renew_s=0.5, idle_check_s=30.0)
    a = Proc(cfg, tmp_path, "a")
    b = Proc(cfg, tmp_path, "b")
    procs += [a, b]
    first_holder = wait_for(lambda: holder(cfg))
    live, standby = (a, b) if first_holder == a.holder else (b, a)
    assert first_holder == live.holder
    wait_for(lambda: "event=standby" in standby.stderr())
    assert standby.popen.poll() is None and live.popen.poll() is None

    one = push_feature(sandbox, "before-kill", {"one.txt": "1\n"})
    # Not asserted ready in the emit's report: with a runner live, the emit's own git check races the
    # runner's fetch in the same repository and may defer to it (the runner settles the candidate).
    asyncio.run(emit(cfg, readiness_events(one.slug, one.branch, one.sha)))
    wait_for(lambda: queue_status(cfg).get("before-kill") == "integrated")
    assert status(cfg)["lease"]["holder"] == live.holder  # the standby never took it meanwhile

    live.popen.kill()
    killed_at = time.monotonic()
    assert live.wait() == -signal.SIGKILL
    two = push_feature(sandbox, "after-kill", {"two.txt": "2\n"})
    asyncio.run(emit(cfg, readiness_events(two.slug, two.branch, two.sha)))
    wait_for(lambda: holder(cfg) == standby.holder, timeout=ttl + 5)
    took_over = time.monotonic() - killed_at
    assert took_over < ttl + 2.0, took_over  # the TTL plus the standby's poll interval and slack
    wait_for(lambda: queue_status(cfg).get("after-kill") == "integrated", timeout=10)
    lease = status(cfg)["lease"]
    assert (lease["holder"], lease["fencing"]) == (standby.holder, 2)
    shas = [line for line in sandbox.main_log("%(trailers:key=Candidate-Sha,valueonly)") if line]
    assert sorted(shas) == sorted([one.sha, two.sha])

    standby.popen.send_signal(signal.SIGTERM)
    assert standby.wait() == 0, standby.stderr()
    assert holder(cfg) is None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_runner_sleeps_until_an_emit_from_another_process_wakes_it(
    tmp_path: Path, sandbox: Sandbox, procs: list[Proc]
) -> None:
    """No busy polling: idle, the runner neither fetches nor burns CPU, even with a candidate that
    waits on git. With ``idle_check_s = 30`` only the wake socket can explain a prompt integration."""
    cfg = make_config(tmp_path, sandbox, idle_check_s=30.0)
    moved = push_feature(sandbox, "moved", {"m.txt": "1\n"})
    moved.worker.commit({"m.txt": "2\n"}, "moved on")
    moved.worker.push(moved.branch)
    [waiting] = asyncio.run(emit(cfg, readiness_events(moved.slug, moved.branch, moved.sha)))
    assert (waiting["status"], waiting["reason_codes"]) == ("waiting", ["branch_moved"])
    fetch_head = sandbox.integrator_repo / ".git" / "FETCH_HEAD"
    fetch_head.unlink()  # the emit fetched; from now on only the runner does
    proc = Proc(cfg, tmp_path, "runner")
    procs.append(proc)
    wait_for(lambda: holder(cfg) == proc.holder)
    wait_for(lambda: fetch_head.exists() and fetch_head.stat().st_size > 0)  # its first fetch, written out

    fetched, cpu = fetch_head.stat().st_mtime_ns, cpu_seconds(proc.popen.pid)
    time.sleep(1.0)  # an observation window: nothing may happen in it
    assert fetch_head.stat().st_mtime_ns == fetched, "the idle runner fetched again: it is polling"
    assert cpu_seconds(proc.popen.pid) - cpu < 0.2

    feature = push_feature(sandbox, "woken", {"w.txt": "w\n"})
    emitted_at = time.monotonic()
    events = readiness_events(feature.slug, feature.branch, feature.sha)
    batch = "".join(
        json.dumps({"type": e.type, "payload": json.loads(e.payload_json())}) + "\n" for e in events
    )
    res = cli(cfg, "emit", "--wait", "--json", "-", input=batch)
    assert res.returncode == 0, res.stderr
    wait_for(lambda: queue_status(cfg).get("woken") == "integrated", timeout=10)
    assert time.monotonic() - emitted_at < 10 < cfg.idle_check_s
    assert proc.popen.poll() is None  # still running, waiting for more
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_a_holder_frozen_past_its_ttl_is_fenced_off_and_never_pushes(
    tmp_path: Path, sandbox: Sandbox, procs: list[Proc]
) -> None:
    """SIGSTOP the holder mid-candidate until its lease expires: the standby takes over and lands the
    candidate; the old holder, resumed, finds its token stale before its push, stops writing and
    goes back to standby (the new holder may die too)."""
    ttl = 1.0
    marker = tmp_path / "verify-runs"
    cfg = make_config(
        tmp_path,
        sandbox,
        lease_ttl_s=ttl,
        lease_renew_s=0.25,
        verify_command=["sh", "-c", f"echo run >> {marker}; sleep 0.5"],
    )
    feature = push_feature(sandbox, "fenced", {"f.txt": "f\n"})
    asyncio.run(emit_ready(cfg, feature))
    first = Proc(cfg, tmp_path, "first")
    procs.append(first)
    wait_for(marker.exists)  # the first holder is verifying: merged, not yet pushed
    # Not inside a write transaction (a lease renewal): that would hold every writer off until it resumes.
    freeze_outside_a_write(first.popen.pid, cfg.db)
    second = Proc(cfg, tmp_path, "second")
    procs.append(second)
    wait_for(lambda: queue_status(cfg).get("fenced") == "integrated", timeout=15)
    assert holder(cfg) == second.holder
    first.popen.send_signal(signal.SIGCONT)
    wait_for(lambda: "event=standby_again" in first.stderr(), timeout=10)
    assert "event=lease_lost" in first.stderr()
    assert first.popen.poll() is None and holder(cfg) == second.holder  # standing by, not holding
    shas = [line for line in sandbox.main_log("%(trailers:key=Candidate-Sha,valueonly)") if line]
    assert shas == [feature.sha]  # landed once, by the second holder
    assert marker.read_text().count("run") == 2
    [done] = outcomes(cfg, "integration_completed")
    assert done["attempt"] == 2  # the recovered retry, under the new fencing token
    assert db_rows(cfg, "SELECT fencing FROM leases")[0]["fencing"] == 2
    for proc in (second, first):
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.wait() == 0
