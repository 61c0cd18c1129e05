"""Small helpers for the acceptance tests: the real CLI on a real sandbox, read back as JSON."""

from __future__ import annotations

import json
from typing import Any

from conftest import Feature, cli

from integrator.config import Config
from integrator.sandbox import Sandbox


def emit_cli(
    cfg: Config,
    feature: Feature,
    *,
    ready_at: str | None = None,
    events: tuple[str, ...] = ("review_approved", "branch_pushed", "finalize_ready"),
) -> None:
    """Emit readiness events for ``feature`` through the real ``integrator emit`` command."""
    for kind in events:
        if kind == "review_approved":
            args = ["--slug", feature.slug, "--sha", feature.sha, "--reviewer", "rev", "--round", "1"]
        elif kind == "branch_pushed":
            args = ["--branch", feature.branch, "--sha", feature.sha, "--pusher", feature.worker.name]
        else:
            args = [
                "--slug",
                feature.slug,
                "--branch",
                feature.branch,
                "--sha",
                feature.sha,
                "--worker",
                feature.worker.name,
            ]
            if ready_at:
                args += ["--at", ready_at]
        result = cli(cfg, "emit", "--wait", kind, *args)
        assert result.returncode == 0, result.stderr


def status(cfg: Config) -> dict[str, Any]:
    result = cli(cfg, "status", "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def candidate(cfg: Config, slug: str) -> dict[str, Any]:
    found = [c for c in status(cfg)["candidates"] if c["slug"] == slug]
    assert found, f"no candidate {slug}"
    return found[0]


def run_once(cfg: Config, *extra: str) -> None:
    result = cli(cfg, "run", "--once", *extra)
    assert result.returncode == 0, result.stderr


def merged_candidates(sandbox: Sandbox) -> list[str]:
    """Candidate-Sha trailers of main's first-parent history, oldest first."""
    shas = []
    for body in reversed(sandbox.main_log("%(trailers:key=Candidate-Sha,valueonly)")):
        if body.strip():
            shas.append(body.strip())
    return shas
