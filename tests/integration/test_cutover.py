"""Cutover and rollback (issue 6 item 5, docs/cutover.md) through the real CLI and a real shadow history.

The parity history is built the way it is in production: candidates are predicted by the real
shadow drain (``integrator run --once --shadow``) while a legacy worker merges them into main by
hand and pushes; the next shadow run sees them land and settles each prediction.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from conftest import INTEGRATOR, Feature, as_json, cli, db_rows, make_config, ok, push_feature, wait_for

from integrator.config import Config
from integrator.events import utcnow
from integrator.sandbox import Sandbox, Worker

BASE_LINES = [f"line {n}" for n in range(1, 11)]


def text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def emit_ready(cfg: Config, feature: Feature) -> None:
    now = utcnow().isoformat()
    slug, branch, sha = feature.slug, feature.branch, feature.sha
    events = [
        {
            "type": "review_approved",
            "payload": {"slug": slug, "sha": sha, "reviewer": "rev", "review_round": 1, "approved_at": now},
        },
        {
            "type": "branch_pushed",
            "payload": {"branch": branch, "sha": sha, "remote": "origin", "pushed_at": now},
        },
        {
            "type": "finalize_ready",
            "payload": {"slug": slug, "branch": branch, "sha": sha, "worker": "w", "ready_at": now},
        },
    ]
    result = cli(cfg, "emit", "--wait", "--json", "-", input="".join(json.dumps(e) + "\n" for e in events))
    assert result.returncode == 0, result.stderr


def refused(cfg: Config, *args: str) -> str:
    result = cli(cfg, *args)
    assert result.returncode == 1, f"{args} was expected to be refused:\n{result.stdout}{result.stderr}"
    return result.stderr


def mode_notes(cfg: Config) -> list[dict[str, Any]]:
    return [
        json.loads(r["payload"])
        for r in db_rows(cfg, "SELECT payload FROM outbox WHERE kind = 'mode_changed'")
    ]


def git(path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=check)


class Legacy:
    """The old way: a person merges feature branches into main on their machine and pushes main."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.worker: Worker = sandbox.worker("legacy")

    def sync(self) -> None:
        git(self.worker.path, "fetch", "--quiet", "origin")
        git(self.worker.path, "checkout", "--quiet", "-B", "main", "origin/main")

    def merge(self, feature: Feature, *, resolve: dict[str, str] | None = None) -> None:
        self.sync()
        merged = git(
            self.worker.path,
            "merge",
            "--no-ff",
            "--quiet",
            "--no-edit",
            f"origin/{feature.branch}",
            check=False,
        )
        if resolve is None:
            assert merged.returncode == 0, merged.stderr
        else:
            assert merged.returncode != 0, "this legacy merge was expected to conflict"
            self.worker.commit(resolve, f"Merge {feature.branch} (conflict resolved by hand)")
        pushed = self.push_main()
        assert pushed.returncode == 0, pushed.stderr

    def commit_on_main(self, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
        self.sync()
        self.worker.commit(files, "a direct change to main")
        return self.push_main()

    def push_main(self) -> subprocess.CompletedProcess[str]:
        return git(self.worker.path, "push", "--quiet", "origin", "HEAD:refs/heads/main", check=False)


def setup(tmp_path: Path, **config: Any) -> tuple[Sandbox, Config]:
    sandbox = Sandbox.create(
        tmp_path / "sb", files={"README.md": "# sandbox\n", "shared.txt": text(BASE_LINES)}
    )
    settings: dict[str, Any] = {"mode": "shadow", "gate": {"min_decided": 2}}
    settings.update(config)
    return sandbox, make_config(tmp_path, sandbox, **settings)


def report(cfg: Config) -> dict[str, Any]:
    data: dict[str, Any] = as_json(cfg, "shadow-report")
    return data


def test_cutover_is_refused_with_every_reason_the_gate_and_the_hooks_give(tmp_path: Path) -> None:
    sandbox, cfg = setup(tmp_path, stall_limit_s=1.0)
    first = refused(cfg, "cutover")
    assert "parity gate: only 0 decided candidates; the gate needs at least 2" in first
    assert "the hooks are not installed: run `integrator hooks install" in first

    # Shadow history: one prediction that the legacy path proves wrong, one right, one never decided.
    wrong = push_feature(sandbox, "wrong", {"shared.txt": text(["wrong", *BASE_LINES[1:]])})
    right = push_feature(sandbox, "right", {"right.txt": "r\n"})
    stuck = push_feature(sandbox, "stuck", {"stuck.txt": "s\n"})
    for feature in (wrong, right, stuck):
        emit_ready(cfg, feature)
    ok(cfg, "run", "--once", "--shadow")
    predictions = {
        r["slug"]: r["prediction"]
        for r in db_rows(
            cfg, "SELECT c.slug, p.prediction FROM predictions p JOIN candidates c ON c.id = p.candidate_id"
        )
    }
    assert predictions == {"wrong": "would_integrate", "right": "would_integrate", "stuck": "would_integrate"}
    legacy = Legacy(sandbox)
    assert legacy.commit_on_main({"shared.txt": text(["legacy", *BASE_LINES[1:]])}).returncode == 0
    legacy.merge(wrong, resolve={"shared.txt": text(["legacy+wrong", *BASE_LINES[1:]])})
    legacy.merge(right)
    ok(cfg, "run", "--once", "--shadow")
    parity = report(cfg)
    assert (parity["decided"], parity["agreements"]) == (2, 1)
    [disagreement] = parity["disagreements"]
    assert (disagreement["slug"], disagreement["actual"]) == ("wrong", "resolved_conflict")

    # An integrator error in the window: a shadow cycle after the remote went away (run's preflight
    # refuses to start against a remote that is not there).
    runner = subprocess.Popen(
        [INTEGRATOR, "--config", str(cfg.config_path), "run", "--shadow"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: db_rows(cfg, "SELECT 1 FROM leases WHERE holder IS NOT NULL"), what="the lease")
        git(sandbox.integrator_repo, "remote", "set-url", "origin", str(tmp_path / "nowhere.git"))
        wait_for(lambda: db_rows(cfg, "SELECT 1 FROM faults"))
    finally:
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=20) == 0
    git(sandbox.integrator_repo, "remote", "set-url", "origin", str(sandbox.remote))

    ok(cfg, "hooks", "install", "--remote", str(sandbox.remote))
    wait_for(lambda: report(cfg)["stuck"], timeout=10)
    # The recorded bare repository must exist when the switch is made (the clone fetches from a copy,
    # so the preflight's "remote answers" holds and the gate gives its own reasons).
    moved_away = sandbox.remote.with_name("moved-away.git")
    copy = tmp_path / "copy.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(sandbox.remote), str(copy)], check=True)
    git(sandbox.integrator_repo, "remote", "set-url", "origin", str(copy))
    os.rename(sandbox.remote, moved_away)
    try:
        message = refused(cfg, "cutover")
    finally:
        os.rename(moved_away, sandbox.remote)
        git(sandbox.integrator_repo, "remote", "set-url", "origin", str(sandbox.remote))
    assert "parity gate: agreement 50.0% is below 95%" in message
    assert "parity gate: 1 candidate(s) stuck longer than the stall limit (1s)" in message
    assert "integrator error(s) in the window" in message
    assert "the hooks are not verified since they were installed" in message
    assert f"the recorded bare repository {sandbox.remote} does not exist" in message
    assert "only 0 decided" not in message and "not installed" not in message

    status = as_json(cfg, "status")
    assert (status["mode"], status["mode_by"]) == ("shadow", "config")
    assert mode_notes(cfg) == []
    assert (sandbox.remote / "integrator" / "mode").read_text().strip() == "shadow"
    assert "already in shadow" in refused(cfg, "rollback", "--reason", "nothing to roll back")


def test_cutover_after_a_passing_gate_then_rollback_restores_legacy_pushes(tmp_path: Path) -> None:
    sandbox, cfg = setup(tmp_path)
    features = [push_feature(sandbox, f"shadow-{n}", {f"s{n}.txt": f"{n}\n"}) for n in (1, 2)]
    for feature in features:
        emit_ready(cfg, feature)
    ok(cfg, "run", "--once", "--shadow")
    legacy = Legacy(sandbox)
    for feature in features:
        legacy.merge(feature)
    ok(cfg, "run", "--once", "--shadow")
    parity = report(cfg)
    assert (parity["decided"], parity["agreement_rate"], parity["gate"]["verdict"]) == (2, 1.0, "pass")

    hooks_only = refused(cfg, "cutover")
    assert "the hooks are not installed" in hooks_only and "parity gate" not in hooks_only
    ok(cfg, "hooks", "install", "--remote", str(sandbox.remote))
    assert "not verified" in refused(cfg, "cutover")
    ok(cfg, "authority", "verify", "--remote", str(sandbox.remote))

    out = ok(cfg, "cutover", "--reason", "parity 2/2, hooks verified")
    assert "mode: cutover since " in out
    status = as_json(cfg, "status")
    assert (status["mode"], status["mode_reason"]) == ("cutover", "parity 2/2, hooks verified")
    assert status["mode_since"] and status["mode_by"] and status["mode_by"] != "config"
    assert (sandbox.remote / "integrator" / "mode").read_text().strip() == "cutover"
    [note] = mode_notes(cfg)
    assert (note["mode"], note["previous"], note["automatic"], note["by"]) == (
        "cutover",
        "shadow",
        False,
        status["mode_by"],
    )
    assert "already in cutover" in refused(cfg, "cutover")

    # The remote now refuses the legacy path, while the integrator's own run still lands candidates.
    main_before = sandbox.main_sha()
    rejected = legacy.commit_on_main({"legacy.txt": "bypass\n"})
    assert rejected.returncode != 0 and "is written only by the integrator" in rejected.stderr
    assert sandbox.main_sha() == main_before
    after = push_feature(sandbox, "after-cutover", {"after.txt": "a\n"})
    emit_ready(cfg, after)
    ok(cfg, "run", "--once")
    assert sandbox.main_log("%P")[0].split() == [main_before, after.sha]
    assert f"Candidate-Sha: {after.sha}" in "\n".join(sandbox.main_log("%B"))

    assert "a rollback needs a reason" in refused(cfg, "rollback", "--reason", "  ")
    out = ok(cfg, "rollback", "--reason", "drill: the legacy path must work again")
    assert "mode: shadow since " in out
    status = as_json(cfg, "status")
    assert (status["mode"], status["mode_reason"]) == ("shadow", "drill: the legacy path must work again")
    assert (sandbox.remote / "integrator" / "mode").read_text().strip() == "shadow"
    notes = mode_notes(cfg)
    assert [(n["previous"], n["mode"], n["automatic"]) for n in notes] == [
        ("shadow", "cutover", False),
        ("cutover", "shadow", False),
    ]
    assert legacy.commit_on_main({"legacy.txt": "allowed again\n"}).returncode == 0
    assert sandbox.main_log("%s")[0] == "a direct change to main"
