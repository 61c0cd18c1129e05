"""Shared fixtures: real git sandboxes (bare remote + clones), real SQLite, the real CLI.

Nothing here fakes git or SQLite; helpers only save typing.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from support import killpoints

from integrator.config import Config, build_config, write_config
from integrator.events import Event, make_event, utcnow
from integrator.phases import PhaseProbe
from integrator.runner import Runner
from integrator.sandbox import Sandbox, Worker
from integrator.service import Integrator

INTEGRATOR = str(Path(sys.executable).with_name("integrator"))


def wait_for(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def async_wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox.create(tmp_path / "sb")


def make_config(root: Path, sandbox: Sandbox, **overrides: Any) -> Config:
    """Write ``root/integrator.toml`` for the sandbox and return the loaded config."""
    data: dict[str, Any] = {
        "repo": str(sandbox.integrator_repo),
        "db": str(root / "integrator.db"),
        "todos_dir": str(root / "todos"),
        "state_dir": str(root / "state"),
        "credential_file": str(root / "integrator.credential"),
        "mode": "cutover",
        "lease_ttl_s": 5.0,
        "lease_renew_s": 1.0,
        "idle_check_s": 1.0,
        "git_timeout_s": 30.0,
    }
    data.update(overrides)
    path = root / "integrator.toml"
    cfg = build_config(data, path)
    write_config(cfg, path)
    return cfg


@pytest.fixture
def config(tmp_path: Path, sandbox: Sandbox) -> Config:
    return make_config(tmp_path, sandbox)


@pytest_asyncio.fixture
async def integ(config: Config) -> AsyncIterator[Integrator]:
    service = await Integrator.open(config)
    try:
        yield service
    finally:
        await service.close()


def readiness_events(slug: str, branch: str, sha: str, *, worker: str = "w", round_: int = 1) -> list[Event]:
    """The three events that make (slug, branch, sha) ready."""
    now = utcnow()
    return [
        make_event(
            "review_approved",
            {"slug": slug, "sha": sha, "reviewer": "rev", "review_round": round_, "approved_at": now},
        ),
        make_event("branch_pushed", {"branch": branch, "sha": sha, "remote": "origin", "pushed_at": now}),
        make_event(
            "finalize_ready", {"slug": slug, "branch": branch, "sha": sha, "worker": worker, "ready_at": now}
        ),
    ]


@dataclass
class Feature:
    slug: str
    branch: str
    sha: str
    worker: Worker


def push_feature(
    sandbox: Sandbox,
    slug: str,
    files: dict[str, str],
    *,
    worker: str | None = None,
    branch: str | None = None,
) -> Feature:
    """A worker commits ``files`` on a new branch from origin/main and pushes it."""
    w = sandbox.worker(worker or slug)
    name = branch or f"feature/{slug}"
    w.start(name)
    sha = w.commit(files, f"{slug}: change")
    w.push(name)
    return Feature(slug, name, sha, w)


def db_rows(cfg: Config, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    """Read the product's database as an outsider would: read-only, never creating the file."""
    conn = sqlite3.connect(f"file:{cfg.db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


async def emit_ready(cfg: Config, *features: Feature) -> None:
    """Declare each feature ready through the service and insist it was queued."""
    async with await Integrator.open(cfg) as integ:
        for f in features:
            report = await integ.emit(readiness_events(f.slug, f.branch, f.sha), wait=True)
            assert [c.status for c in report.candidates] == ["ready"], report.candidates


async def run_once(cfg: Config, *, probe: PhaseProbe | None = None) -> None:
    """One in-process ``run --once`` drain (``probe``: a phase probe, e.g. ``killpoints.probe(...)``)."""
    async with await Integrator.open(cfg) as integ:
        await asyncio.wait_for(Runner(cfg, integ.store, probe=probe).run(asyncio.Event(), once=True), 60)


def ok(cfg: Config, *args: str) -> str:
    result = cli(cfg, *args)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def as_json(cfg: Config, *args: str) -> Any:
    return json.loads(ok(cfg, *args, "--json"))


def cli(
    cfg: Config | Path,
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    probe: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``integrator`` console script; with ``probe`` (``killpoints`` variables), through
    the test-only wrapper that installs a phase probe first."""
    path = cfg.config_path if isinstance(cfg, Config) else cfg
    full_env = {**os.environ, **(env or {}), **(probe or {})}
    program = killpoints.command("integrator") if probe else [INTEGRATOR]
    return subprocess.run(
        [*program, "--config", str(path), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
