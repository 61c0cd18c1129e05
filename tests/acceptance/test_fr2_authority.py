"""FR2, FR5.2 and verification 3: after cutover only the integrator can push main; workers keep pushing branches.

The bare remote is served over ``git daemon`` on loopback (a server transport, so the hook is a
boundary); the integrator and the workers all talk to it through its git:// URL.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cli, make_config, push_feature, wait_for
from helpers import emit_cli, merged_candidates, run_once
from support.serving import serving

from integrator import git
from integrator.config import Config
from integrator.remote_serve import ServedRemote
from integrator.sandbox import Sandbox


@pytest.fixture
def served(sandbox: Sandbox) -> Iterator[ServedRemote]:
    with serving(sandbox.remote) as remote:
        yield remote


@pytest.fixture
def cutover_config(tmp_path: Path, sandbox: Sandbox, served: ServedRemote) -> Config:
    """Cutover mode, hooks installed and verified, every clone pointed at the daemon."""
    cfg = make_config(tmp_path, sandbox, mode="cutover")
    git.run_sync(["remote", "set-url", "origin", served.url], cwd=sandbox.integrator_repo)
    installed = cli(cfg, "hooks", "install", "--remote", str(sandbox.remote))
    assert installed.returncode == 0, installed.stderr
    return cfg


def worker_on_daemon(sandbox: Sandbox, served: ServedRemote, name: str):  # type: ignore[no-untyped-def]
    worker = sandbox.worker(name)
    git.run_sync(["remote", "set-url", "origin", served.url], cwd=worker.path)
    return worker


def test_v3_fr2_1_fr5_2_no_non_integrator_path_can_push_main(
    sandbox: Sandbox, served: ServedRemote, cutover_config: Config
) -> None:
    verified = cli(cutover_config, "authority", "verify", "--remote", served.url, "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["boundary"] is True
    assert report["ok"] is True and report["failures"] == [] and report["mode"] == "cutover"
    rows = report["variants"]
    refused = [r for r in rows if r["expected"] == "rejected"]
    assert len(refused) >= 12, [r["variant"] for r in rows]
    assert all(r["ok"] for r in rows)
    # A worker's ordinary attempt, end to end: refused, with what to do instead.
    mallory = worker_on_daemon(sandbox, served, "mallory")
    mallory.start("main")
    mallory.commit({"hack.txt": "x\n"}, "straight to main")
    before = sandbox.main_sha()
    pushed = subprocess.run(
        ["git", "push", "origin", "HEAD:main"], cwd=mallory.path, capture_output=True, text=True
    )
    assert pushed.returncode != 0
    assert "finalize_ready" in pushed.stderr
    assert sandbox.main_sha() == before
    # The integrator's own path still lands a candidate.
    feature = push_feature(sandbox, "legit", {"legit.txt": "ok\n"})
    emit_cli(cutover_config, feature)
    run_once(cutover_config)
    assert merged_candidates(sandbox) == [feature.sha]


def test_fr2_2_workers_keep_pushing_feature_branches(
    sandbox: Sandbox, served: ServedRemote, cutover_config: Config
) -> None:
    """Feature pushes pass in cutover, and the post-receive hook turns each into a branch_pushed event."""
    workers = [worker_on_daemon(sandbox, served, f"w{n}") for n in range(3)]
    shas = {}
    for n, worker in enumerate(workers):
        worker.start(f"feature/w{n}")
        shas[f"feature/w{n}"] = worker.commit({f"w{n}.txt": f"{n}\n"}, f"work {n}")
        worker.push(f"feature/w{n}")

    def stored() -> dict[str, str]:
        events = json.loads(cli(cutover_config, "events", "--json").stdout)
        return {e["payload"]["branch"]: e["payload"]["sha"] for e in events if e["type"] == "branch_pushed"}

    wait_for(lambda: stored() == shas, timeout=30)
