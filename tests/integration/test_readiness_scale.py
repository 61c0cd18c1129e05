"""Readiness at scale: emit runs no git; an idle check cycle's git cost does not grow with the queue.

Git processes are counted through a logging ``git`` first on PATH (tests/support/gitcount.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import cli, push_feature, readiness_events
from support import gitcount

from integrator import readiness
from integrator.config import Config
from integrator.sandbox import Sandbox
from integrator.service import Integrator


def ndjson(slug: str, branch: str, sha: str) -> str:
    events = readiness_events(slug, branch, sha)
    return "".join(
        json.dumps({"type": e.type, "payload": json.loads(e.payload_json())}) + "\n" for e in events
    )


def test_emit_stores_without_running_git_and_emit_wait_returns_the_verdict(
    config: Config, sandbox: Sandbox, tmp_path: Path
) -> None:
    path, log = gitcount.install(tmp_path / "shim")
    first = push_feature(sandbox, "quick", {"q.txt": "1\n"})
    res = cli(config, "emit", "--json", "-", "--json-output", input=ndjson(first.slug, first.branch, first.sha),
              env={"PATH": path})  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert gitcount.calls(log) == []
    [cand] = json.loads(res.stdout)["candidates"]
    assert (cand["status"], cand["reason_codes"]) == ("waiting", ["git_pending"])

    second = push_feature(sandbox, "waited", {"w.txt": "1\n"})
    res = cli(config, "emit", "--wait", "--json", "-", "--json-output",
              input=ndjson(second.slug, second.branch, second.sha), env={"PATH": path})  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "fetch" in gitcount.calls(log)
    [cand] = json.loads(res.stdout)["candidates"]
    assert cand["status"] == "ready"
    # The check that --wait ran gave the earlier, un-waited candidate its verdict too.
    queue = json.loads(cli(config, "queue", "--json").stdout)
    assert [q["slug"] for q in queue] == ["quick", "waited"]


def _unpushed(n: int) -> list[str]:
    """Shas no remote branch holds: candidates that keep waiting on git (not_reachable)."""
    return [hashlib.sha1(f"candidate {k}".encode()).hexdigest() for k in range(n)]


async def _idle_cycle_calls(config: Config, n: int, log: Path) -> list[str]:
    async with await Integrator.open(config) as integ:
        events = []
        for k, sha in enumerate(_unpushed(n)):
            events += readiness_events(f"wait-{n}-{k}", f"feature/wait-{n}-{k}", sha)
        await integ.emit(events)
        await integ.check()  # the first verdicts: git per new candidate (the change)
        waiting = [
            c for c in await integ.store.read(readiness.waiting_on_git) if c.slug.startswith(f"wait-{n}-")
        ]
        assert len(waiting) == n and {c.reasons[0].code for c in waiting} == {"not_reachable"}
        log.write_text("")
        await integ.check()  # nothing changed
        return gitcount.calls(log)


async def test_an_idle_check_cycle_costs_the_same_git_calls_with_10_or_200_waiting(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, log = gitcount.install(tmp_path / "shim")
    monkeypatch.setenv("PATH", path)
    few = await _idle_cycle_calls(config, 10, log)
    many = await _idle_cycle_calls(config, 200, log)
    assert few == many
    # One fetch, one for-each-ref of the remote's branches, one for-each-ref --merged for all.
    assert sorted(many) == ["fetch", "for-each-ref", "for-each-ref"]
