"""`integrator hooks install`: what it writes, that it is idempotent, and what it refuses."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
from pathlib import Path

import pytest
from authority_helpers import g, make_setup, snapshot
from conftest import wait_for

from integrator.authority.hooks import HOOK_MARKER, install_hooks
from integrator.authority.remote import read_remote_mode, write_remote_mode
from integrator.service import Integrator


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_writes_hooks_pinned_config_credential_and_record(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="shadow", install=False)
    result = s.cli("hooks", "install", "--remote", str(s.bare))
    assert result.exit_code == 0, result.output

    for name in ("pre-receive", "post-receive"):
        hook = s.bare / "hooks" / name
        text = hook.read_text()
        assert text.startswith("#!/bin/sh\n") and HOOK_MARKER in text
        assert _mode(hook) & 0o111
        assert "@" + "STATE@" not in text  # every placeholder rendered
    assert "refs/heads/main" in (s.bare / "hooks" / "pre-receive").read_text()
    assert g(s.bare, "config", "--local", "core.hooksPath").stdout.strip() == str(s.bare / "hooks")
    assert g(s.bare, "config", "--local", "receive.advertisePushOptions").stdout.strip() == "true"

    credential = s.credential()
    assert len(credential) == 64 and int(credential, 16) >= 0
    assert _mode(s.cfg.credential_file) == 0o600
    assert s.paths.credential.read_text().strip() == credential
    assert _mode(s.paths.credential) == 0o600
    assert s.paths.mode.read_text().strip() == "shadow"

    record_text = (s.cfg.state_dir / "authority.json").read_text()
    record = json.loads(record_text)
    assert record["bare"] == str(s.bare)
    assert record["installed_at"]
    assert set(record["hooks"]) == {"pre-receive", "post-receive"}
    assert credential not in record_text and credential not in result.output


def test_rendered_hooks_parse_as_posix_sh(tmp_path: Path) -> None:
    s = make_setup(tmp_path)
    for name in ("pre-receive", "post-receive"):
        checked = subprocess.run(["sh", "-n", str(s.bare / "hooks" / name)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def test_second_install_changes_nothing(tmp_path: Path) -> None:
    s = make_setup(tmp_path)
    before_bare = snapshot(s.bare)
    before_record = (s.cfg.state_dir / "authority.json").read_bytes()
    before_credential = s.cfg.credential_file.read_bytes()

    result = s.cli("hooks", "install", "--remote", str(s.bare))

    assert result.exit_code == 0, result.output
    assert "nothing changed" in result.output
    assert snapshot(s.bare) == before_bare
    assert (s.cfg.state_dir / "authority.json").read_bytes() == before_record
    assert s.cfg.credential_file.read_bytes() == before_credential


def test_install_keeps_an_existing_mode_file(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="shadow")
    write_remote_mode(s.bare, "cutover")
    install_hooks(s.cfg, s.bare)
    assert read_remote_mode(s.bare) == "cutover"


@pytest.mark.parametrize(("configured", "live"), [("cutover", "shadow"), ("shadow", "cutover")])
def test_a_new_remote_enforces_the_mode_the_store_runs_in(tmp_path: Path, configured: str, live: str) -> None:
    # The configured mode is only the initial one; after a rollback or a cutover the store's mode is
    # the truth. A remote installed later must enforce that, or main is frozen in shadow, or open to
    # every worker while the integrator believes it is the only writer.
    s = make_setup(tmp_path, mode=configured, install=False)

    async def switch() -> None:
        async with await Integrator.open(s.cfg) as integ:
            await integ.set_mode(live, by="test", reason="switched before the remote moved")

    asyncio.run(switch())
    result = s.cli("hooks", "install", "--remote", str(s.bare))
    assert result.exit_code == 0, result.output
    assert read_remote_mode(s.bare) == live
    assert f"set the remote's mode to {live}" in result.output


def test_an_unreadable_store_refuses_the_install_and_changes_nothing(tmp_path: Path) -> None:
    s = make_setup(tmp_path, install=False)
    s.cfg.db.write_text("not a database\n" * 100)
    before = snapshot(s.bare)
    result = s.cli("hooks", "install", "--remote", str(s.bare))
    assert result.exit_code == 2
    assert f"database {s.cfg.db}" in result.output and "not an SQLite database" in result.output
    assert snapshot(s.bare) == before and not s.cfg.credential_file.exists()


def test_foreign_hook_is_refused_then_replaced_with_a_backup_under_force(tmp_path: Path) -> None:
    s = make_setup(tmp_path, install=False)
    foreign = s.bare / "hooks" / "pre-receive"
    foreign.write_text("#!/bin/sh\necho someone else's hook\n")
    foreign.chmod(0o755)
    before = snapshot(s.bare)

    refused = s.cli("hooks", "install", "--remote", str(s.bare))

    assert refused.exit_code == 1
    assert "not an integrator hook" in refused.output and "--force" in refused.output
    assert snapshot(s.bare) == before
    assert not s.cfg.credential_file.exists()

    forced = s.cli("hooks", "install", "--remote", str(s.bare), "--force")

    assert forced.exit_code == 0, forced.output
    backups = list((s.bare / "hooks").glob("pre-receive.pre-integrator.*"))
    assert len(backups) == 1 and "someone else's hook" in backups[0].read_text()
    assert HOOK_MARKER in foreign.read_text()


def test_a_foreign_hooks_path_is_refused_without_force(tmp_path: Path) -> None:
    s = make_setup(tmp_path, install=False)
    g(s.bare, "config", "core.hooksPath", "/somewhere/else")
    refused = s.cli("hooks", "install", "--remote", str(s.bare))
    assert refused.exit_code == 1 and "core.hooksPath" in refused.output
    assert g(s.bare, "config", "core.hooksPath").stdout.strip() == "/somewhere/else"


@pytest.mark.parametrize(
    "target",
    ["missing", "work", "hooks-subdir", "newline", "file"],
)
def test_bad_remote_exits_2_and_changes_nothing(tmp_path: Path, target: str) -> None:
    s = make_setup(tmp_path, install=False)
    (tmp_path / "plain-file").write_text("x")
    remote = {
        "missing": str(tmp_path / "nope.git"),
        "work": str(s.work),
        "hooks-subdir": str(s.bare / "hooks"),
        "newline": str(s.bare) + "\nrm -rf /",
        "file": str(tmp_path / "plain-file"),
    }[target]
    before = snapshot(tmp_path)

    result = s.cli("hooks", "install", "--remote", remote)

    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: remote:")
    assert snapshot(tmp_path) == before


def test_invalid_existing_credential_is_refused_without_echoing_it(tmp_path: Path) -> None:
    s = make_setup(tmp_path, install=False)
    s.cfg.credential_file.write_text("not-a-credential-SECRET\n")
    before = snapshot(s.bare)
    result = s.cli("hooks", "install", "--remote", str(s.bare))
    assert result.exit_code == 2
    assert "SECRET" not in result.output
    assert snapshot(s.bare) == before


def test_hostile_but_valid_paths_are_quoted_into_the_hooks(tmp_path: Path) -> None:
    root = tmp_path / 'it\'s a "dir" $HOME `x` @STATE@'
    root.mkdir()
    s = make_setup(root, mode="cutover")
    sha = s.commit("quoted")

    assert s.push("origin", f"{sha}:refs/heads/quoted").returncode == 0
    rejected = s.push("origin", f"{sha}:refs/heads/main")

    assert rejected.returncode == 1 and "pre-receive hook declined" in rejected.stderr
    wait_for(lambda: [e for e in s.branch_pushed() if e["branch"] == "quoted"], what="the event")
