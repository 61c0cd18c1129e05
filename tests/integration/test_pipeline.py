"""The speculative verify pipeline (integrator/pipeline.py) against real git, real verifies, real SQLite.

Each scenario runs at K = 4 and at K = 1 on identical sandboxes: the landed set and order must be
the same, and at K = 4 every commit pushed to main must be a commit the pipeline verified.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from conftest import (
    Feature,
    as_json,
    async_wait_for,
    db_rows,
    emit_ready,
    make_config,
    push_feature,
    readiness_events,
    run_once,
)

from integrator import git
from integrator.config import Config
from integrator.runner import Runner
from integrator.sandbox import Sandbox
from integrator.service import Integrator

FAILS = "sleep 0.3; test ! -e FAIL"


def landed(sandbox: Sandbox) -> list[str]:
    """Candidate slugs on the remote's main, oldest first."""
    out = git.run_sync(
        [
            "log",
            "--first-parent",
            "--reverse",
            "--format=%(trailers:key=Candidate-Slug,valueonly,separator=)",
            "main",
        ],
        cwd=sandbox.remote,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def pushed(sandbox: Sandbox) -> list[str]:
    out = git.run_sync(["rev-list", "--first-parent", "--reverse", "main"], cwd=sandbox.remote).stdout
    return out.split()[1:]


def started(cfg: Config) -> list[dict[str, Any]]:
    return [
        json.loads(r["payload"])
        for r in db_rows(cfg, "SELECT payload FROM outbox WHERE kind = 'verify_started' ORDER BY id")
    ]


def features(sandbox: Sandbox, n: int, fail: set[int] = frozenset()) -> list[Feature]:
    return [
        push_feature(sandbox, f"c{k}", {f"c{k}.txt": f"{k}\n", **({"FAIL": "x\n"} if k in fail else {})})
        for k in range(n)
    ]


async def drain(root: Path, depth: int, *, fail: set[int]) -> tuple[Sandbox, Config]:
    sandbox = Sandbox.create(root / "sb")
    cfg = make_config(root, sandbox, verify_command=["sh", "-c", FAILS], pipeline_depth=depth)
    await emit_ready(cfg, *features(sandbox, 6, fail))
    await run_once(cfg)
    return sandbox, cfg


async def test_a_failure_mid_pipeline_rebuilds_those_behind_and_lands_what_k1_lands(tmp_path: Path) -> None:
    one, _ = await drain(tmp_path / "k1", 1, fail={2})
    four, cfg = await drain(tmp_path / "k4", 4, fail={2})
    assert landed(four) == landed(one) == ["c0", "c1", "c3", "c4", "c5"]
    [blocked] = as_json(cfg, "blocked")
    assert (blocked["slug"], blocked["reason_code"]) == ("c2", "verify_failed")
    runs = started(cfg)
    # c3 first verified on main + c0 + c1 + c2, then, once c2 failed, rebuilt without it.
    c3 = [r["ahead"] for r in runs if r["slug"] == "c3"]
    assert c3[0] == ["c0", "c1", "c2"] and "c2" not in c3[-1], c3
    # What was pushed is exactly what the pipeline built and verified.
    assert set(pushed(four)) <= {r["merge_sha"] for r in runs}
    assert db_rows(cfg, "SELECT value FROM settings WHERE key = 'pipeline'")  # status had something to show


GATED = 'while [ ! -e "$GATE" ]; do sleep 0.05; done; test ! -e FAIL'


def _verifying(cfg: Config) -> int:
    found = db_rows(cfg, "SELECT value FROM settings WHERE key = 'pipeline'")
    runs = json.loads(found[0]["value"])["runs"] if found else []
    return sum(1 for r in runs if r["state"] == "verifying")


async def _c1_leaves_in_flight(root: Path, depth: int, how: str) -> tuple[Sandbox, Config, dict[str, Any]]:
    """c0..c4 queued; while verifies wait on a gate, c1 leaves the chain: it gets a new
    finalize_ready (a new sha, ``how="supersede"``) or is withdrawn (``how="withdraw"``)."""
    sandbox = Sandbox.create(root / "sb")
    gate = root / "gate"
    cfg = make_config(
        root, sandbox, verify_command=["sh", "-c", GATED.replace("$GATE", str(gate))], pipeline_depth=depth
    )
    found = features(sandbox, 5)
    await emit_ready(cfg, *found)
    seen: dict[str, Any] = {}
    async with await Integrator.open(cfg) as integ:
        task = asyncio.create_task(Runner(cfg, integ.store, holder="one").run(asyncio.Event(), once=True))
        if depth > 1:
            await async_wait_for(lambda: _verifying(cfg) == 4, 60)
            seen["status"] = as_json(cfg, "status")
        else:
            await async_wait_for(lambda: db_rows(cfg, "SELECT 1 FROM checkpoints WHERE phase = 'merged'"), 60)
        c1 = found[1]
        if how == "supersede":
            new = c1.worker.commit({"c1.txt": "1, reworked\n"}, "c1: rework")
            c1.worker.push(c1.branch)
            report = await integ.emit(readiness_events("c1", c1.branch, new, round_=2), wait=True)
            assert {c.sha: c.status for c in report.candidates} == {c1.sha: "superseded", new: "ready"}
        else:
            await integ.withdraw("c1", by="test", reason="not wanted after all")
        if depth > 1:
            # The verifies built on the old c1 are stopped and rebuilt on the new chain before the gate opens.
            await async_wait_for(
                lambda: any(r["slug"] == "c2" and "c1" not in r["ahead"] for r in started(cfg)), 60
            )
        gate.touch()
        await asyncio.wait_for(task, 120)
    return sandbox, cfg, seen


async def test_a_superseding_finalize_ready_in_flight_rebuilds_behind_it_like_k1(tmp_path: Path) -> None:
    one, _, _ = await _c1_leaves_in_flight(tmp_path / "k1", 1, "supersede")
    four, cfg, seen = await _c1_leaves_in_flight(tmp_path / "k4", 4, "supersede")
    assert landed(four) == landed(one) == ["c0", "c2", "c3", "c4", "c1"]
    assert set(pushed(four)) <= {r["merge_sha"] for r in started(cfg)}
    # While they waited, status showed four verifies, each on its predicted base.
    runs = seen["status"]["pipeline"]["runs"]
    assert [(r["slug"], r["state"], r["ahead"]) for r in runs] == [
        ("c0", "verifying", []),
        ("c1", "verifying", ["c0"]),
        ("c2", "verifying", ["c0", "c1"]),
        ("c3", "verifying", ["c0", "c1", "c2"]),
    ]
    assert all(r["seconds"] is not None and r["seconds"] >= 0 for r in runs)


async def test_a_withdraw_in_flight_rebuilds_behind_it_like_k1(tmp_path: Path) -> None:
    one, _, _ = await _c1_leaves_in_flight(tmp_path / "k1", 1, "withdraw")
    four, cfg, _ = await _c1_leaves_in_flight(tmp_path / "k4", 4, "withdraw")
    assert landed(four) == landed(one) == ["c0", "c2", "c3", "c4"]
    runs = started(cfg)
    assert set(pushed(four)) <= {r["merge_sha"] for r in runs}
    # c2 was first verified on a chain holding c1, then rebuilt without it before anything landed.
    c2 = [r["ahead"] for r in runs if r["slug"] == "c2"]
    assert "c1" in c2[0] and "c1" not in c2[-1], c2


async def test_two_runners_at_k4_only_the_holder_verifies_and_pushes(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, verify_command=["sh", "-c", FAILS], pipeline_depth=4)
    await emit_ready(cfg, *features(sandbox, 6, {2}))
    async with await Integrator.open(cfg) as a, await Integrator.open(cfg) as b:
        runners = [Runner(cfg, a.store, holder="one"), Runner(cfg, b.store, holder="two")]
        await asyncio.wait_for(asyncio.gather(*(r.run(asyncio.Event(), once=True) for r in runners)), 120)
    assert landed(sandbox) == ["c0", "c1", "c3", "c4", "c5"]
    # Every verify and every landing was done under one fencing token: the holder's. The other
    # runner stood by (and, once the holder was done, found nothing to do).
    verifying = {r["fencing"] for r in started(cfg)}
    landing = {
        r["fencing"] for r in db_rows(cfg, "SELECT fencing FROM transitions WHERE to_status = 'integrated'")
    }
    assert len(verifying) == 1 and verifying == landing
    assert set(pushed(sandbox)) <= {r["merge_sha"] for r in started(cfg)}
