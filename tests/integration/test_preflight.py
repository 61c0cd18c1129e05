"""Preflight (issue #12 item 3, issue #16 "Config"): a misconfiguration is one line and exit 2 before
any state is touched: no mode change, no fault, nothing stored, the database's bytes unchanged."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from conftest import cli, db_rows, make_config, ok, push_feature

from integrator.config import Config
from integrator.sandbox import Sandbox

BOT = str(Path(sys.executable).with_name("teleclaude-bot"))
SHA = "a" * 40


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_exit_2(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def reconfigure(tmp_path: Path, sandbox: Sandbox, **overrides: Any) -> Config:
    """A working database first (one candidate queued), then the config broken in one place."""
    good = make_config(tmp_path, sandbox)
    feature = push_feature(sandbox, "one", {"a.txt": "1\n"})
    ok(
        good,
        "emit",
        "finalize_ready",
        "--slug",
        "one",
        "--branch",
        feature.branch,
        "--sha",
        feature.sha,
        "--worker",
        "w",
    )
    return make_config(tmp_path, sandbox, **overrides)


def broken_credential(tmp_path: Path) -> dict[str, Any]:
    # A directory where the file should be: unreadable even for root, who ignores mode bits.
    (tmp_path / "cred-dir").mkdir()
    return {"credential_file": str(tmp_path / "cred-dir")}


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("remote", "no remote named 'nope'"),
        ("missing_repo", "does not exist"),
        ("credential", "credential_file"),
    ],
)
def test_run_refuses_a_misconfiguration_and_changes_nothing(
    tmp_path: Path, sandbox: Sandbox, case: str, needle: str
) -> None:
    overrides: dict[str, Any] = {
        "remote": {"remote": "nope"},
        "missing_repo": {"repo": str(tmp_path / "gone")},
        "credential": {},
    }[case]
    if case == "credential":
        overrides = broken_credential(tmp_path)
    cfg = reconfigure(tmp_path, sandbox, **overrides)
    before = digest(cfg.db)
    mode_before = db_rows(cfg, "SELECT value FROM settings WHERE key = 'mode'")
    res = cli(cfg, "run", "--once")
    assert_one_line_exit_2(res, needle)
    assert digest(cfg.db) == before
    assert db_rows(cfg, "SELECT value FROM settings WHERE key = 'mode'") == mode_before
    assert db_rows(cfg, "SELECT * FROM faults") == []


def test_a_remote_that_does_not_answer_is_refused_by_run_cutover_and_hooks_install(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = reconfigure(tmp_path, sandbox)
    subprocess.run(
        ["git", "remote", "set-url", "origin", str(tmp_path / "no-such-remote.git")],
        cwd=sandbox.integrator_repo,
        check=True,
    )
    before = digest(cfg.db)
    for args in (["run", "--once"], ["cutover"], ["hooks", "install", "--remote", str(sandbox.remote)]):
        assert_one_line_exit_2(cli(cfg, *args), "does not answer")
    assert digest(cfg.db) == before


@pytest.mark.parametrize("case", ["missing", "plain_dir", "file", "unknown_remote", "subdirectory"])
def test_emit_refuses_a_repository_that_is_not_the_clone_and_stores_nothing(
    tmp_path: Path, sandbox: Sandbox, case: str
) -> None:
    target = tmp_path / "target"
    overrides: dict[str, Any] = {"repo": str(target)}
    if case == "plain_dir":
        target.mkdir()
    elif case == "file":
        target.write_text("x")
    elif case == "unknown_remote":
        overrides = {"remote": "nope"}
    elif case == "subdirectory":
        (sandbox.integrator_repo / "sub").mkdir()
        overrides = {"repo": str(sandbox.integrator_repo / "sub")}
    cfg = reconfigure(tmp_path, sandbox, **overrides)
    before = digest(cfg.db)
    res = cli(cfg, "emit", "branch_pushed", "--branch", "feature/x", "--sha", SHA)
    assert_one_line_exit_2(res, "remote" if case == "unknown_remote" else "repo")
    res = cli(
        cfg,
        "emit",
        "--json",
        "-",
        input='{"type": "branch_pushed", "payload": '
        f'{{"branch": "b", "sha": "{SHA}", "pushed_at": "2026-01-01T00:00:00+00:00"}}}}\n',
    )
    assert_one_line_exit_2(res)
    assert digest(cfg.db) == before


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        ("lease_ttl_s = inf\n", {}, "lease_ttl_s: Input should be a finite number"),
        ("lease_ttl_s = 1e400\n", {}, "lease_ttl_s: Input should be a finite number"),
        ("idle_check_s = nan\n", {}, "idle_check_s: Input should be a finite number"),
        ("lease_ttl_s = 10.0\nlease_renew_s = 20.0\n", {}, "must be shorter than lease_ttl_s"),
        ("push_retries = 9223372036854775807\n", {}, "push_retries: Input should be less than or equal"),
        ("git_timeout_s = -1\n", {}, "git_timeout_s"),
        ("", {"INTEGRATOR_GATE": "not json"}, "gate: Input should be a valid dictionary"),
        ("", {"INTEGRATOR_LEASE_TTL_S": "inf"}, "lease_ttl_s"),
        ("discord = {channel_id = 123456789012345678901234567890}\n", {}, "discord.channel_id"),
    ],
)
def test_bad_config_matrix_every_command_exits_2_and_changes_nothing(
    tmp_path: Path, sandbox: Sandbox, toml: str, env: dict[str, str], needle: str
) -> None:
    cfg = reconfigure(tmp_path, sandbox)
    assert cfg.config_path is not None
    # The broken keys replace the file's own, written as given (tomli_w cannot spell 1e400).
    data = tomllib.loads(cfg.config_path.read_text(encoding="utf-8"))
    for key in tomllib.loads(toml):
        data.pop(key, None)
    cfg.config_path.write_text(toml + tomli_w.dumps(data), encoding="utf-8")
    before = digest(cfg.db)
    for args in (
        ["status"],
        ["run", "--once"],
        ["emit", "branch_pushed", "--branch", "b", "--sha", SHA],
        ["pause", "--reason", "x"],
        ["cutover"],
        ["resume", "one"],
    ):
        assert_one_line_exit_2(cli(cfg, *args, env=env), needle)
    assert digest(cfg.db) == before


def test_resume_with_a_path_for_a_slug_is_bad_input(config: Config) -> None:
    ok(config, "status")
    before = digest(config.db)
    assert_one_line_exit_2(cli(config, "resume", "../../etc"), "slug")
    assert digest(config.db) == before


def test_the_bot_with_a_missing_repository_exits_2_at_once_with_one_line(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, repo=str(tmp_path / "gone"))
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    # The timeout is the assertion that it exits instead of retrying forever.
    res = subprocess.run(
        [BOT, "--config", str(cfg.config_path)], capture_output=True, text=True, timeout=30, env=env
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"error: repo: {tmp_path / 'gone'} does not exist; fix `repo` in {cfg.config_path}"
    ]
    assert not cfg.db.exists()
