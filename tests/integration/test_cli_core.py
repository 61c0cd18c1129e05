"""The core commands through the real ``integrator`` console script: init, emit, status, queue, events."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import INTEGRATOR, cli, push_feature

from integrator import lease
from integrator.config import Config
from integrator.sandbox import Sandbox
from integrator.store import Store

SHA = "d" * 40


def run(*args: str, cwd: Path, input: str | None = None, env: dict[str, str] | None = None) -> Any:
    """The console script without --config, to exercise how it finds its configuration."""
    base = {k: v for k, v in os.environ.items() if k != "INTEGRATOR_CONFIG"}
    return subprocess.run(
        [INTEGRATOR, *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
    )


def stored_events(cfg: Config) -> list[tuple[str, str]]:
    conn = sqlite3.connect(cfg.db)
    try:
        return [(r[0], r[1]) for r in conn.execute("SELECT type, idempotency_key FROM events ORDER BY seq")]
    finally:
        conn.close()


def line(event_type: str, **payload: Any) -> str:
    return json.dumps({"type": event_type, "payload": payload})


# --- init and finding the configuration --------------------------------------------------------------


def test_init_writes_the_config_and_database_and_status_finds_it(sandbox: Sandbox, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    res = run(
        "init", "--repo", str(sandbox.integrator_repo), "--main", "main", "--db", "state.db", "--mode", "cutover",
        cwd=home,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    written = tomllib.loads((home / "integrator.toml").read_text())
    # A relative path is relative to the config file; an absolute one stays as it is.
    assert (home / written["repo"]).resolve() == sandbox.integrator_repo.resolve()
    assert (written["remote"], written["main_branch"], written["db"], written["mode"]) == (
        "origin",
        "main",
        "state.db",
        "cutover",
    )
    assert (home / "state.db").stat().st_size > 0
    # ./integrator.toml is found from the working directory ...
    status = run("status", "--json", cwd=home)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["mode"] == "cutover"
    # ... $INTEGRATOR_CONFIG from anywhere, and --config wins over both.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert (
        run(
            "status", "--json", cwd=elsewhere, env={"INTEGRATOR_CONFIG": str(home / "integrator.toml")}
        ).returncode
        == 0
    )
    missing = run("status", cwd=elsewhere)
    assert missing.returncode == 2
    assert f"no configuration at {elsewhere / 'integrator.toml'}" in missing.stderr
    via_flag = run("--config", str(home / "integrator.toml"), "status", "--json", cwd=elsewhere,
                   env={"INTEGRATOR_CONFIG": str(elsewhere / "nope.toml")})  # fmt: skip
    assert via_flag.returncode == 0, via_flag.stderr
    # A second init does not overwrite without --force.
    again = run("init", "--repo", str(sandbox.integrator_repo), cwd=home)
    assert again.returncode == 2 and "already exists (use --force to overwrite)" in again.stderr
    forced = run("init", "--repo", str(sandbox.integrator_repo), "--db", "state.db", "--force", cwd=home)
    assert forced.returncode == 0, forced.stderr
    assert tomllib.loads((home / "integrator.toml").read_text())["mode"] == "shadow"


@pytest.mark.parametrize("problem", ["not_a_repo", "missing_dir", "missing_remote"])
def test_init_refuses_a_bad_repository_and_writes_nothing(
    sandbox: Sandbox, tmp_path: Path, problem: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    repo, extra, expected = {
        "not_a_repo": (home, [], f"repo: {home} is not a git repository"),
        "missing_dir": (home / "nope", [], f"repo: {home / 'nope'} is not a git repository"),
        "missing_remote": (
            sandbox.integrator_repo,
            ["--remote", "upstream"],
            "has no remote named 'upstream'",
        ),
    }[problem]
    res = run("init", "--repo", str(repo), *extra, cwd=home)
    assert res.returncode == 2
    assert expected in res.stderr
    assert sorted(p.name for p in home.iterdir()) == []


@pytest.mark.parametrize("problem", ["deleted", "not_a_repo", "remote_removed"])
def test_status_reports_a_repository_gone_since_init(config: Config, sandbox: Sandbox, problem: str) -> None:
    repo = sandbox.integrator_repo
    if problem == "deleted":
        shutil.rmtree(repo)
        expected = f"repo: {repo} does not exist"
    elif problem == "not_a_repo":
        shutil.rmtree(repo / ".git")
        expected = f"repo: {repo} is not a git repository"
    else:
        subprocess.run(["git", "remote", "remove", "origin"], cwd=repo, check=True)
        expected = f"remote: {repo} has no remote named 'origin'"
    for args in (["status"], ["status", "--json"]):
        res = cli(config, *args)
        assert res.returncode == 2, res.stdout
        assert res.stderr.startswith(f"error: {expected}")
        assert res.stdout == ""


# --- emit by flags ------------------------------------------------------------------------------------


def test_emit_each_type_by_flags_with_timestamps_defaulting_to_now(config: Config, sandbox: Sandbox) -> None:
    feature = push_feature(sandbox, "flags", {"f.txt": "1\n"})
    before = datetime.now(UTC)
    results = [
        cli(config, "emit", "--wait", "review_approved", "--slug", "flags", "--sha", feature.sha, "--reviewer", "rev",
            "--round", "1"),
        cli(config, "emit", "--wait", "branch_pushed", "--branch", feature.branch, "--sha", feature.sha, "--pusher", "ann"),
        cli(config, "emit", "--wait", "finalize_ready", "--slug", "flags", "--branch", feature.branch, "--sha", feature.sha,
            "--worker", "w1"),
    ]  # fmt: skip
    after = datetime.now(UTC)
    for res, kind in zip(results, ("review_approved", "branch_pushed", "finalize_ready"), strict=True):
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(f"{kind}: stored")
    assert "ready" in results[2].stdout
    events = json.loads(cli(config, "events", "--json").stdout)
    assert [e["type"] for e in events] == ["finalize_ready", "branch_pushed", "review_approved"]
    for event, key in zip(events, ("ready_at", "pushed_at", "approved_at"), strict=True):
        stamp = datetime.fromisoformat(event["payload"][key])
        assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert before <= stamp <= after
        assert len(event["received_at"]) == len("2026-01-01T00:00:00.000000+00:00")
    assert events[1]["payload"]["pusher"] == "ann" and events[1]["payload"]["remote"] == "origin"
    queue = json.loads(cli(config, "queue", "--json").stdout)
    assert [(q["slug"], q["sha"], q["status"]) for q in queue] == [("flags", feature.sha, "queued")]


def test_the_same_event_twice_is_stored_once_and_said_to_be_a_duplicate(config: Config) -> None:
    base = [
        "emit",
        "finalize_ready",
        "--slug",
        "dup",
        "--branch",
        "feature/dup",
        "--sha",
        SHA,
        "--worker",
        "w",
    ]
    first = cli(config, *base, "--at", "2026-03-01T12:00:00.000001+00:00")
    second = cli(config, *base, "--at", "2026-03-01T12:00:09.500000+01:00")
    assert first.returncode == 0 and first.stdout.startswith("finalize_ready: stored")
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("finalize_ready: duplicate (already stored; nothing changed)")
    as_json = cli(config, "emit", "--wait", "--json-output", *base[1:])
    assert json.loads(as_json.stdout)["duplicates"] == 1
    assert len(stored_events(config)) == 1
    # The stored event keeps the first timestamp, to the microsecond.
    [event] = json.loads(cli(config, "events", "--json").stdout)
    assert datetime.fromisoformat(event["payload"]["ready_at"]) == datetime(
        2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC
    )
    # Same identity, other content: refused, nothing stored.
    conflict = cli(config, "emit", "--wait", "finalize_ready", "--slug", "dup", "--branch", "feature/dup", "--sha", SHA,
                   "--worker", "someone-else")  # fmt: skip
    assert conflict.returncode == 2
    assert "same identity but different content is already stored" in conflict.stderr
    assert len(stored_events(config)) == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["review_approved", "--slug", "Bad_Slug", "--sha", "abc", "--reviewer", "r", "--round", "0",
          "--at", "2026-01-01T00:00:00"],
         ["--at: '2026-01-01T00:00:00' is not an ISO-8601 timestamp with a timezone", "payload.slug:", "payload.sha:", "payload.review_round:"]),
        (["finalize_ready", "--slug", "s", "--branch", "--upload-pack=x", "--sha", SHA, "--worker", "w"],
         ["payload.branch: must not start with '-'"]),
        (["finalize_ready", "--slug", "s", "--branch=-x", "--sha", SHA, "--worker", "w"],
         ["payload.branch: must not start with '-'"]),
        (["branch_pushed", "--branch", "a..b", "--sha", SHA.upper(), "--remote", "-x"],
         ["payload.branch: must not contain '..'", "payload.sha:", "payload.remote: must not start with '-'"]),
        (["branch_pushed", "--branch", "b", "--sha", SHA, "--at", "yesterday"],
         ["--at: 'yesterday' is not an ISO-8601 timestamp"]),
    ],
)  # fmt: skip
def test_invalid_flags_name_every_bad_field_and_store_nothing(
    config: Config, args: list[str], named: list[str]
) -> None:
    before = stored_events(config) if config.db.exists() else []
    res = cli(config, "emit", "--wait", *args)
    assert res.returncode == 2
    assert res.stdout == ""
    message = res.stderr.strip()
    assert message.startswith("error: ") and message.count("\n") == 0  # one message
    for fragment in named:
        assert fragment in message, (fragment, message)
    if config.db.exists():
        assert stored_events(config) == before


def test_review_round_must_be_an_integer_on_the_command_line(config: Config) -> None:
    res = cli(
        config,
        "emit",
        "--wait",
        "review_approved",
        "--slug",
        "s",
        "--sha",
        SHA,
        "--reviewer",
        "r",
        "--round",
        "true",
    )
    assert res.returncode == 2
    assert "'true' is not a whole number in digits 0-9" in res.stderr and res.stderr.count("\n") == 1


# --- emit --json - --------------------------------------------------------------------------------------


def test_ndjson_batch_is_stored_atomically(config: Config, sandbox: Sandbox) -> None:
    feature = push_feature(sandbox, "batch", {"b.txt": "1\n"})
    at = "2026-03-01T12:00:00.000001+00:00"
    good = [
        line("review_approved", slug="batch", sha=feature.sha, reviewer="r", review_round=1, approved_at=at),
        line("branch_pushed", branch=feature.branch, sha=feature.sha, remote="origin", pushed_at=at),
        "",
        line("finalize_ready", slug="batch", branch=feature.branch, sha=feature.sha, worker="w", ready_at=at),
    ]
    res = cli(config, "emit", "--wait", "--json", "-", "--json-output", input="\n".join(good) + "\n")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["stored"], out["duplicates"], out["check_error"]) == (3, 0, None)
    assert [c["status"] for c in out["candidates"]] == ["ready"]
    again = cli(config, "emit", "--wait", "--json", "-", input="\n".join(good))
    assert again.returncode == 0 and again.stdout.count("duplicate") == 3
    assert len(stored_events(config)) == 3


def test_one_bad_line_rejects_the_whole_batch_naming_every_bad_line(config: Config) -> None:
    at = "2026-03-01T12:00:00+00:00"
    lines = [
        line("branch_pushed", branch="ok", sha=SHA, remote="origin", pushed_at=at),  # fine on its own
        line("review_approved", slug="s", sha=SHA, reviewer="r", review_round=True, approved_at=at),
        line("branch_pushed", branch="ok2", sha=SHA, remote="origin", pushed_at="2026-03-01T12:00:00"),
        line("finalize_ready", slug="s", branch="b", sha=SHA, worker="w", ready_at=at, colour="blue"),
        line("finalize_ready", slug="s", sha=SHA, worker="w", ready_at=at),
        "{this is not json",
        line("finalize_ready", slug="s", branch="--upload-pack=x", sha=SHA, worker="w", ready_at=at),
        line("superseded", slug="s", branch="b", sha=SHA, superseded_by=SHA, superseded_at=at),
    ]
    res = cli(config, "emit", "--wait", "--json", "-", input="\n".join(lines))
    assert res.returncode == 2
    message = res.stderr
    assert message.startswith("error: batch rejected, nothing stored:")
    for fragment in (
        "line 2: payload.review_round: Input should be a valid integer",
        "line 3: payload.pushed_at: '2026-03-01T12:00:00' is not an ISO-8601 timestamp with a timezone",
        "line 4: payload.colour: Extra inputs are not permitted",
        "line 5: payload.branch: Field required",
        "line 6: not JSON",
        "line 7: payload.branch: must not start with '-'",
        "line 8: type: superseded is recorded by the integrator itself",
    ):
        assert fragment in message, (fragment, message)
    assert "line 1" not in message
    assert not config.db.exists() or stored_events(config) == []


def test_emit_without_type_or_with_empty_stdin_is_an_error(config: Config) -> None:
    assert cli(config, "emit").returncode == 2
    empty = cli(config, "emit", "--wait", "--json", "-", input="\n\n")
    assert empty.returncode == 2 and "no events on stdin" in empty.stderr


# --- status, queue, events ------------------------------------------------------------------------------


async def test_status_json_has_the_documented_shape(config: Config, sandbox: Sandbox) -> None:
    ready = push_feature(sandbox, "shape", {"s.txt": "1\n"})
    at = "2026-03-01T12:00:00.000001+00:00"
    batch = [
        line("review_approved", slug="shape", sha=ready.sha, reviewer="r", review_round=1, approved_at=at),
        line("branch_pushed", branch=ready.branch, sha=ready.sha, remote="origin", pushed_at=at),
        line("finalize_ready", slug="shape", branch=ready.branch, sha=ready.sha, worker="w", ready_at=at),
        line("finalize_ready", slug="waits", branch="feature/waits", sha=SHA, worker="w", ready_at=at),
    ]
    assert cli(config, "emit", "--wait", "--json", "-", input="\n".join(batch)).returncode == 0
    status = json.loads(cli(config, "status", "--json").stdout)
    assert status["mode"] == "cutover" and status["paused"] is False and status["lease"] is None
    [item] = status["queue"]
    assert {k: item[k] for k in ("slug", "branch", "sha", "status", "ready_at")} == {
        "slug": "shape",
        "branch": ready.branch,
        "sha": ready.sha,
        "status": "queued",
        "ready_at": at,
    }
    by_slug = {c["slug"]: c for c in status["candidates"]}
    assert by_slug["shape"]["status"] == "ready" and by_slug["shape"]["reasons"] == []
    assert by_slug["waits"]["status"] == "waiting"
    assert by_slug["waits"]["reasons"] == [
        "no review_approved for waits yet",
        f"no branch_pushed for feature/waits at {SHA[:10]} on origin",
    ]
    assert status["recent_outcomes"] == []
    # With a holder, the lease shows who and until when.
    store = await Store.open(config.db)
    try:
        now = datetime.now(UTC).timestamp()
        held = await store.write(lambda c: lease.acquire(c, lease.MAIN_LEASE, "host-a:123", now=now, ttl=300))
    finally:
        await store.close()
    assert held is not None
    status = json.loads(cli(config, "status", "--json").stdout)
    assert status["lease"]["holder"] == "host-a:123"
    assert datetime.fromisoformat(status["lease"]["expires"]).timestamp() == pytest.approx(
        held.expires_at, abs=1e-5
    )
    text = cli(config, "status")
    assert text.returncode == 0
    assert "lease: host-a:123" in text.stdout and "no review_approved for waits yet" in text.stdout
    events = json.loads(cli(config, "events", "--json", "--limit", "2").stdout)
    assert [e["type"] for e in events] == ["finalize_ready", "finalize_ready"]
    assert cli(config, "events", "--limit", "0").returncode == 2


def test_status_on_an_unusable_database_is_exit_2_and_touches_nothing(config: Config) -> None:
    config.db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4000)
    before = (config.db.read_bytes(), config.db.stat().st_mtime_ns, sorted(os.listdir(config.db.parent)))
    for args in (["status", "--json"], ["queue"], ["events"]):
        res = cli(config, *args)
        assert res.returncode == 2
        assert f"database {config.db}" in res.stderr and "left untouched" in res.stderr
    assert (
        config.db.read_bytes(),
        config.db.stat().st_mtime_ns,
        sorted(os.listdir(config.db.parent)),
    ) == before


def test_status_never_imports_discord(config: Config) -> None:
    probe = (
        "import sys\n"
        "from integrator.cli import cli\n"
        f"sys.argv = ['integrator', '--config', {str(config.config_path)!r}, 'status', '--json']\n"
        "try:\n"
        "    cli(prog_name='integrator')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "loaded = sorted(m for m in sys.modules if m == 'discord' or m.startswith('discord.'))\n"
        "print('LOADED', loaded)\n"
    )
    res = subprocess.run(
        [str(Path(INTEGRATOR).with_name("python")), "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert '"mode": "cutover"' in res.stdout  # status really ran
    assert res.stdout.strip().endswith("LOADED []")


def test_pause_holds_the_queue_and_unpause_releases_it(config: Config, sandbox: Sandbox) -> None:
    feature = push_feature(sandbox, "held", {"held.txt": "held\n"})
    main_before = sandbox.main_sha()
    res = cli(config, "pause", "--reason", "release freeze")
    assert res.returncode == 0 and res.stdout.rstrip().endswith(": release freeze"), res.stdout
    for kind, args in (
        ("review_approved", ["--slug", "held", "--sha", feature.sha, "--reviewer", "r", "--round", "1"]),
        ("branch_pushed", ["--branch", feature.branch, "--sha", feature.sha]),
        (
            "finalize_ready",
            ["--slug", "held", "--branch", feature.branch, "--sha", feature.sha, "--worker", "w"],
        ),
    ):
        assert cli(config, "emit", "--wait", kind, *args).returncode == 0
    assert cli(config, "run", "--once").returncode == 0
    status = json.loads(cli(config, "status", "--json").stdout)
    assert status["paused"] and status["pause"]["reason"] == "release freeze"
    assert [q["slug"] for q in status["queue"]] == ["held"] and sandbox.main_sha() == main_before

    assert cli(config, "unpause").stdout.strip() == "unpaused"
    assert cli(config, "run", "--once").returncode == 0
    status = json.loads(cli(config, "status", "--json").stdout)
    assert not status["paused"] and status["queue"] == []
    assert sandbox.main_sha() != main_before
    assert [c["status"] for c in status["candidates"] if c["slug"] == "held"] == ["integrated"]
