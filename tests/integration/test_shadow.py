"""Shadow mode and the parity report (issue 5, docs/cutover.md) on real repositories.

Every prediction and every actual here comes from real git: the shadow drain predicts with
``git merge-tree --write-tree``, and the legacy path (a worker merging and pushing main directly,
resolving conflicts by hand) decides what really happened. Disagreements are made the way they
happen in life: main changes after the prediction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from conftest import (
    async_wait_for,
    cli,
    db_rows,
    emit_ready,
    make_config,
    push_feature,
)

from integrator import git
from integrator.config import Config
from integrator.runner import Runner
from integrator.sandbox import Sandbox
from integrator.service import Integrator


def predictions(cfg: Config) -> dict[str, dict[str, Any]]:
    found = db_rows(
        cfg,
        "SELECT c.slug, p.prediction, p.tree, p.conflicted_paths, p.main_sha, p.actual, p.actual_detail"
        " FROM predictions p JOIN candidates c ON c.id = p.candidate_id",
    )
    return {r["slug"]: {**dict(r), "conflicted_paths": json.loads(r["conflicted_paths"])} for r in found}


def statuses(cfg: Config) -> dict[str, tuple[str, str]]:
    found = db_rows(
        cfg,
        "SELECT c.slug, c.status AS cand, q.status FROM queue q JOIN candidates c ON c.id = q.candidate_id",
    )
    return {r["slug"]: (r["cand"], r["status"]) for r in found}


def g(cwd: Path, *args: str) -> str:
    return git.run_sync(args, cwd=cwd).stdout.strip()


def legacy_commit(sandbox: Sandbox, files: dict[str, str], message: str) -> str:
    """A worker pushes a commit straight to main, the way things land before cutover."""
    w = sandbox.worker("legacy")
    w.start("main")
    sha = w.commit(files, message)
    w.push("main")
    return sha


def legacy_merge(sandbox: Sandbox, sha: str, *, resolve: dict[str, str] | None = None) -> str:
    """A worker merges ``sha`` into main and pushes; with ``resolve`` the merge must conflict and is
    resolved by hand with those file contents."""
    w = sandbox.worker("legacy")
    w.start("main")
    merged = git.run_sync(
        ["merge", "--no-ff", "-q", "-m", f"legacy merge {sha[:10]}", sha], cwd=w.path, check=False
    )
    if resolve is None:
        assert merged.ok, merged.stderr
    else:
        assert not merged.ok, "expected a conflict"
        for name, text in resolve.items():
            (w.path / name).write_text(text)
        g(w.path, "add", "--", *resolve)
        g(w.path, "commit", "-q", "--no-edit")
    w.push("main")
    return w.head()


async def shadow_once(cfg: Config) -> None:
    async with await Integrator.open(cfg) as integ:
        await asyncio.wait_for(
            Runner(cfg, integ.store, force_shadow=True).run(asyncio.Event(), once=True), 60
        )


def report(cfg: Config) -> dict[str, Any]:
    res = cli(cfg, "shadow-report", "--json")
    assert res.returncode == 0, res.stderr
    data: dict[str, Any] = json.loads(res.stdout)
    return data


async def test_predictions_match_real_merges_and_get_their_actuals_from_the_legacy_path(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    # Cutover in the config: `--shadow` alone must keep the integrator from pushing.
    cfg = make_config(tmp_path, sandbox, mode="cutover", gate={"min_decided": 2, "min_agreement": 0.95})
    clean = push_feature(sandbox, "clean", {"clean.txt": "c\n"})
    clash = push_feature(sandbox, "clash", {"shared.txt": "from the candidate\n"})
    main = legacy_commit(sandbox, {"shared.txt": "from main\n"}, "legacy: shared")
    await emit_ready(cfg, clean, clash)

    run = cli(cfg, "run", "--once", "--shadow")
    assert run.returncode == 0, run.stderr

    assert sandbox.main_sha() == main  # nothing pushed
    found = predictions(cfg)
    assert found["clean"]["prediction"] == "would_integrate"
    assert found["clean"]["tree"] == g(sandbox.remote, "merge-tree", "--write-tree", main, clean.sha)
    assert found["clash"]["prediction"] == "would_block"
    assert (found["clash"]["tree"], found["clash"]["conflicted_paths"]) == (None, ["shared.txt"])
    assert {p["main_sha"] for p in found.values()} == {main}
    assert all(p["actual"] is None for p in found.values())
    # Stored apart from live outcomes: no completed or blocked event, the queue untouched.
    assert db_rows(cfg, "SELECT type FROM events WHERE type LIKE 'integration_%'") == []
    assert statuses(cfg) == {"clean": ("ready", "queued"), "clash": ("ready", "queued")}
    assert report(cfg)["decided"] == 0

    merged_clean = legacy_merge(sandbox, clean.sha)
    merged_clash = legacy_merge(sandbox, clash.sha, resolve={"shared.txt": "from both\n"})
    run = cli(cfg, "run", "--once", "--shadow")
    assert run.returncode == 0, run.stderr

    found = predictions(cfg)
    assert (found["clean"]["actual"], found["clean"]["actual_detail"]) == ("clean", merged_clean)
    assert (found["clash"]["actual"], found["clash"]["actual_detail"]) == ("resolved_conflict", merged_clash)
    status = json.loads(cli(cfg, "status", "--json").stdout)
    assert {c["slug"]: c["status"] for c in status["candidates"]} == {
        "clean": "integrated",
        "clash": "integrated",
    }
    assert statuses(cfg) == {"clean": ("integrated", "integrated"), "clash": ("integrated", "integrated")}
    parity = report(cfg)
    assert (parity["decided"], parity["agreements"], parity["disagreements"]) == (2, 2, [])
    assert parity["gate"] == {
        "verdict": "pass",
        "reasons": [],
        "thresholds": {"min_decided": 2, "min_agreement": 0.95, "stall_limit_s": cfg.stall_limit_s},
    }


@contextlib.asynccontextmanager
async def shadow_running(cfg: Config) -> AsyncIterator[Integrator]:
    integ = await Integrator.open(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(Runner(cfg, integ.store, force_shadow=True).run(stop))
    try:
        yield integ
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await integ.close()


async def test_parity_report_on_a_scripted_history(tmp_path: Path, sandbox: Sandbox) -> None:
    """Two agreements, two disagreements, one stuck candidate and one integrator error, all real."""
    cfg = make_config(
        tmp_path,
        sandbox,
        mode="shadow",
        stall_limit_s=0.01,
        gate={"min_decided": 5, "min_agreement": 0.9},
        rollback={"enabled": False},
    )
    agree_clean = push_feature(sandbox, "agree-clean", {"a.txt": "a\n"})
    agree_block = push_feature(sandbox, "agree-block", {"shared.txt": "b\n"})
    false_clean = push_feature(sandbox, "false-clean", {"c.txt": "c\n"})
    false_block = push_feature(sandbox, "false-block", {"shared2.txt": "d\n"})
    stuck = push_feature(sandbox, "stuck", {"e.txt": "e\n"})
    legacy_commit(sandbox, {"shared.txt": "main\n"}, "legacy: shared")
    conflicting = legacy_commit(sandbox, {"shared2.txt": "main\n"}, "legacy: shared2")
    features = [agree_clean, agree_block, false_clean, false_block, stuck]
    await emit_ready(cfg, *features)

    await shadow_once(cfg)
    predicted = {slug: p["prediction"] for slug, p in predictions(cfg).items()}
    assert predicted == {
        "agree-clean": "would_integrate",
        "agree-block": "would_block",
        "false-clean": "would_integrate",
        "false-block": "would_block",
        "stuck": "would_integrate",
    }

    legacy_merge(sandbox, agree_clean.sha)
    legacy_merge(sandbox, agree_block.sha, resolve={"shared.txt": "both\n"})
    # Main changes after the prediction: the clean one now needs a hand-made resolution...
    legacy_commit(sandbox, {"c.txt": "main's own c\n"}, "legacy: c")
    landed_false_clean = legacy_merge(sandbox, false_clean.sha, resolve={"c.txt": "both c\n"})
    # ...and the conflicting change is reverted, so the predicted block lands cleanly.
    w = sandbox.worker("legacy")
    w.start("main")
    g(w.path, "revert", "--no-edit", conflicting)
    w.push("main")
    landed_false_block = legacy_merge(sandbox, false_block.sha)

    # One real integrator error in the window: the remote is gone for a moment.
    away = sandbox.remote.with_name("remote.away")
    sandbox.remote.rename(away)
    async with shadow_running(cfg) as integ:
        await async_wait_for(lambda: _fault(integ))
    away.rename(sandbox.remote)
    await shadow_once(cfg)

    parity = report(cfg)
    assert (parity["predicted"], parity["decided"], parity["agreements"], parity["undecided"]) == (5, 4, 2, 1)
    assert parity["agreement_rate"] == 0.5
    assert sorted(parity["disagreements"], key=lambda d: d["slug"]) == [
        {
            "slug": "false-block",
            "sha": false_block.sha,
            "prediction": "would_block",
            "actual": "clean",
            "conflicted_paths": ["shared2.txt"],
            "changed_paths": [],
            "landed_by": landed_false_block,
        },
        {
            "slug": "false-clean",
            "sha": false_clean.sha,
            "prediction": "would_integrate",
            "actual": "resolved_conflict",
            "conflicted_paths": [],
            "changed_paths": [],
            "landed_by": landed_false_clean,
        },
    ]
    assert [(s["slug"], s["sha"]) for s in parity["stuck"]] == [("stuck", stuck.sha)]
    assert len(parity["errors"]) >= 1
    assert "does not appear to be a git repository" in parity["errors"][0]["message"]
    gate = parity["gate"]
    assert gate["verdict"] == "fail"
    assert gate["reasons"] == [
        "only 4 decided candidates; the gate needs at least 5",
        "agreement 50.0% is below 90%",
        "1 candidate(s) stuck longer than the stall limit (0s)",
        f"{len(parity['errors'])} integrator error(s) in the window",
    ]

    text = cli(cfg, "shadow-report")
    assert text.returncode == 0, text.stderr
    assert (
        f"false-clean {false_clean.sha[:10]}: predicted would_integrate, actually resolved_conflict"
        in text.stdout
    )
    assert "cutover gate: FAIL" in text.stdout
    # A failing gate keeps cutover shut.
    refused = cli(cfg, "cutover")
    assert refused.returncode != 0
    assert "agreement 50.0% is below 90%" in refused.stderr


async def _fault(integ: Integrator) -> Any:
    return (await integ.status()).model_dump()["fault"]
