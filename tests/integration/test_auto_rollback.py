"""Automatic rollback to shadow (``[rollback]`` in the config, docs/cutover.md), in a real ``integrator run``.

The watchdog is only worth something if the running loop calls it, so every test here starts the
real console script as a background process in cutover, breaks the integrator's way to the remote,
and waits for the process itself to roll back: the store's mode and audit, the remote's mode file,
the notifications, and the remote letting legacy pushes through again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import INTEGRATOR, Feature, cli, db_rows, make_config, push_feature, wait_for

from integrator import settings
from integrator.config import Config
from integrator.cutover import AUTOMATIC_BY
from integrator.events import utcnow
from integrator.sandbox import Sandbox
from integrator.store import Store


def emit(cfg: Config, *events: dict[str, Any]) -> None:
    result = cli(cfg, "emit", "--wait", "--json", "-", input="".join(json.dumps(e) + "\n" for e in events))
    assert result.returncode == 0, result.stderr


def emit_ready(cfg: Config, feature: Feature) -> None:
    now = utcnow().isoformat()
    slug, branch, sha = feature.slug, feature.branch, feature.sha
    emit(
        cfg,
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
    )


def setting(cfg: Config, key: str) -> Any:
    found = db_rows(cfg, "SELECT value FROM settings WHERE key = ?", (key,))
    return json.loads(found[0]["value"]) if found else None


def outbox(cfg: Config, kind: str) -> list[dict[str, Any]]:
    return [
        json.loads(r["payload"]) for r in db_rows(cfg, "SELECT payload FROM outbox WHERE kind = ?", (kind,))
    ]


def faults(cfg: Config) -> int:
    return int(db_rows(cfg, "SELECT COUNT(*) AS n FROM faults")[0]["n"])


def status(cfg: Config) -> dict[str, Any]:
    result = cli(cfg, "status", "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def remote_mode(sandbox: Sandbox) -> str:
    return (sandbox.remote / "integrator" / "mode").read_text().strip()


def legacy_push_to_main(sandbox: Sandbox, name: str) -> subprocess.CompletedProcess[str]:
    w = sandbox.worker("legacy")
    w.start("main")
    w.commit({f"{name}.txt": "legacy\n"}, f"legacy change {name}")
    return subprocess.run(
        ["git", "push", "--quiet", "origin", "HEAD:refs/heads/main"],
        cwd=w.path,
        capture_output=True,
        text=True,
    )


def in_cutover_with_a_queued_candidate(
    tmp_path: Path, *, stall_limit_s: float = 3600.0, gate: dict[str, Any] | None = None, **rollback: Any
) -> tuple[Sandbox, Config, Feature]:
    """Cutover with the hooks enforcing it and one candidate queued (``cut_off_while_running`` ends it)."""
    sandbox = Sandbox.create(tmp_path / "sb")
    cfg = make_config(
        tmp_path, sandbox, mode="cutover", rollback=rollback, stall_limit_s=stall_limit_s, gate=gate or {}
    )
    result = cli(cfg, "hooks", "install", "--remote", str(sandbox.remote))
    assert result.returncode == 0, result.stderr
    assert remote_mode(sandbox) == "cutover"
    assert legacy_push_to_main(sandbox, "before").returncode != 0, "cutover must refuse legacy pushes"
    feature = push_feature(sandbox, "stalled", {"stalled.txt": "s\n"})
    emit_ready(cfg, feature)
    assert [q["slug"] for q in json.loads(cli(cfg, "queue", "--json").stdout)] == ["stalled"]
    return sandbox, cfg, feature


@contextmanager
def cut_off_while_running(cfg: Config) -> Iterator[subprocess.Popen[str]]:
    """``integrator run`` started while its remote answers (preflight refuses a dead one), then an outage:
    the clone points at a remote that is not there, every fetch fails, nothing progresses."""
    assert cli(cfg, "pause", "--reason", "until the runner is up").returncode == 0
    with running(cfg) as proc:
        wait_for(lambda: db_rows(cfg, "SELECT holder FROM leases WHERE holder IS NOT NULL"), what="the lease")
        unreachable = str(cfg.config_path.parent / "unreachable.git") if cfg.config_path else ""
        subprocess.run(["git", "remote", "set-url", "origin", unreachable], cwd=cfg.repo, check=True)
        assert cli(cfg, "unpause").returncode == 0
        yield proc


@contextmanager
def running(cfg: Config) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [INTEGRATOR, "--config", str(cfg.config_path), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def rolled_back(cfg: Config, proc: subprocess.Popen[str]) -> dict[str, Any] | None:
    assert proc.poll() is None, f"integrator run died: {proc.communicate()}"
    mode = setting(cfg, "mode")
    return mode if mode and mode["mode"] == "shadow" else None


def test_a_stalled_queue_rolls_back_automatically_with_one_stall_alarm(tmp_path: Path) -> None:
    # Faults alone must not trigger here: only the stall limit does.
    sandbox, cfg, _ = in_cutover_with_a_queued_candidate(
        tmp_path, infra_failure_limit=1000, stall_limit_s=1.0
    )
    with cut_off_while_running(cfg) as proc:
        record = wait_for(lambda: rolled_back(cfg, proc), timeout=20)
        assert (record["by"], record["automatic"]) == (AUTOMATIC_BY, True)
        assert record["reason"].startswith("queue of 1 made no progress for ")
        assert remote_mode(sandbox) == "shadow"
        [note] = outbox(cfg, "mode_changed")
        assert (note["previous"], note["mode"], note["automatic"], note["by"]) == (
            "cutover",
            "shadow",
            True,
            AUTOMATIC_BY,
        )
        # Wake the runner for more cycles (an unrelated event): the stall goes on, the alarm is not repeated.
        seen = faults(cfg)
        emit(
            cfg,
            {
                "type": "review_approved",
                "payload": {
                    "slug": "unrelated",
                    "sha": "a" * 40,
                    "reviewer": "r",
                    "review_round": 1,
                    "approved_at": utcnow().isoformat(),
                },
            },
        )
        wait_for(lambda: faults(cfg) > seen, timeout=20)
        [alarm] = outbox(cfg, "stall_alarm")
        assert alarm["queue_length"] == 1 and alarm["stalled_for_s"] >= 1
        assert [q["slug"] for q in status(cfg)["queue"]] == ["stalled"], "the candidate is kept, not dropped"
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.read() if proc.stdout else ""
    assert f"[mode] cutover -> shadow (automatic) by {AUTOMATIC_BY}: queue of 1 made no progress" in out

    shown = status(cfg)
    assert (shown["mode"], shown["mode_by"]) == ("shadow", AUTOMATIC_BY)
    assert shown["mode_reason"] == record["reason"] and shown["mode_since"] == record["since"]
    assert legacy_push_to_main(sandbox, "after").returncode == 0, (
        "shadow lets the legacy path push main again"
    )


def test_disabled_rollback_keeps_cutover_through_the_same_faults(tmp_path: Path) -> None:
    sandbox, cfg, _ = in_cutover_with_a_queued_candidate(tmp_path, enabled=False, infra_failure_limit=1)
    with cut_off_while_running(cfg) as proc:
        wait_for(lambda: faults(cfg) >= 2, timeout=20)
        assert proc.poll() is None
    assert setting(cfg, "mode") is None and status(cfg)["mode"] == "cutover"
    assert remote_mode(sandbox) == "cutover" and outbox(cfg, "mode_changed") == []


def test_infrastructure_failures_roll_back_and_cutover_reopens_after_a_clean_window(tmp_path: Path) -> None:
    """The whole round: shadow, cutover, an outage rolls back by itself, shadow again, cutover again.

    The faults that caused the rollback hold the gate for the error window, not forever (the parity
    evidence from before the cutover still counts).
    """
    sandbox = Sandbox.create(tmp_path / "sb")
    cfg = make_config(
        tmp_path,
        sandbox,
        mode="shadow",
        gate={"min_decided": 1, "error_window_s": 3.0},
        rollback={"infra_failure_limit": 2},
    )
    assert cli(cfg, "hooks", "install", "--remote", str(sandbox.remote)).returncode == 0

    def shadow_then_legacy_merge(feature: Feature) -> None:
        emit_ready(cfg, feature)
        assert cli(cfg, "run", "--once").returncode == 0  # shadow: predicts
        legacy = sandbox.worker("legacy")
        legacy.start("main")
        subprocess.run(
            ["git", "merge", "--quiet", "--no-ff", "--no-edit", f"origin/{feature.branch}"],
            cwd=legacy.path,
            check=True,
        )
        legacy.push("main")
        assert cli(cfg, "run", "--once").returncode == 0  # shadow: sees it land

    shadow_then_legacy_merge(push_feature(sandbox, "before", {"before.txt": "b\n"}))
    assert cli(cfg, "authority", "verify", "--remote", str(sandbox.remote)).returncode == 0
    assert cli(cfg, "cutover").returncode == 0

    stalled = push_feature(sandbox, "stalled", {"stalled.txt": "s\n"})
    emit_ready(cfg, stalled)
    url = ["git", "remote", "set-url", "origin"]
    with cut_off_while_running(cfg) as proc:
        record = wait_for(lambda: rolled_back(cfg, proc), timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert (record["by"], record["automatic"]) == (AUTOMATIC_BY, True)
    assert record["reason"] == "2 integrator infrastructure failures in a row"
    assert remote_mode(sandbox) == "shadow"
    assert [(n["mode"], n["automatic"]) for n in outbox(cfg, "mode_changed")] == [
        ("cutover", False),
        ("shadow", True),
    ]
    assert outbox(cfg, "stall_alarm") == [], "the stall limit (an hour) was never reached"
    assert legacy_push_to_main(sandbox, "during-rollback").returncode == 0

    subprocess.run([*url, str(sandbox.remote)], cwd=sandbox.integrator_repo, check=True)
    held = cli(cfg, "cutover")
    assert held.returncode == 1 and "integrator error(s) in the window" in held.stderr, held.stderr
    shadow_then_legacy_merge(push_feature(sandbox, "after", {"after.txt": "a\n"}))

    def report() -> dict[str, Any]:
        data: dict[str, Any] = json.loads(cli(cfg, "shadow-report", "--json").stdout)
        return data

    # A clean error window later, the gate opens again.
    wait_for(lambda: report()["errors"] == [], timeout=20)
    parity = report()
    assert (parity["decided"], parity["agreements"], parity["gate"]["verdict"]) == (2, 2, "pass"), parity
    result = cli(cfg, "cutover", "--reason", "the remote is back")
    assert result.returncode == 0, result.stderr
    shown = status(cfg)
    assert (shown["mode"], shown["mode_reason"]) == ("cutover", "the remote is back")
    assert remote_mode(sandbox) == "cutover"
    assert faults(cfg) >= 2, "the faults stay on record; they no longer hold the gate"


async def test_a_second_store_in_one_process_keeps_its_writes_visible_to_other_processes(
    tmp_path: Path,
) -> None:
    """A process opens a second store beside its own connection (as the spool ingestion once did in the runner).

    Opening it once read the database header with a plain open()/close(), which drops every POSIX
    lock of the process on the file: the next process to close its connection deleted the live
    WAL, and the runner's later commits (its automatic rollback among them) stayed invisible to
    every other process until it exited.
    """
    sandbox = Sandbox.create(tmp_path / "sb")
    cfg = make_config(tmp_path, sandbox)
    reader = [
        sys.executable,
        "-c",
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(c.execute(\"SELECT value FROM settings WHERE key = 'probe'\").fetchone()[0]); c.close()",
        str(cfg.db),
    ]

    def seen_elsewhere() -> str:
        return subprocess.run(reader, capture_output=True, text=True, check=True).stdout.strip()

    first = await Store.open(cfg.db)
    try:
        await first.write(lambda c: settings.put(c, "probe", 1))
        second = await Store.open(cfg.db)
        await second.close()
        assert seen_elsewhere() == "1"
        await first.write(lambda c: settings.put(c, "probe", 2))
        assert seen_elsewhere() == "2"
    finally:
        await first.close()
