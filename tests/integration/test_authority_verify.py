"""`integrator authority verify` against real remotes: local path and git daemon, both modes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from authority_helpers import Setup, g, make_setup
from conftest import wait_for
from support.serving import serving

from integrator import remote_serve
from integrator.authority.credential import ensure_credential

EVERY_VARIANT = {
    "integrator's push (credential as push option)",
    "plain push of main",
    "HEAD:main",
    "refs/heads/main",
    "+main (force)",
    "--no-verify",
    "delete main (--delete)",
    "delete main (:main)",
    "--mirror",
    "--all",
    "--atomic with a feature branch",
    "wrong credential",
    "credential only in an environment variable",
    "forged GIT_PUSH_OPTION_* environment",
    "server-side symbolic ref to main",
    "--receive-pack with hooks off",
    "GIT_CONFIG_GLOBAL turning hooks off",
    "git -c core.hooksPath=/dev/null push",
    "push to refs/heads/HEAD",
    "feature branch",
}
LOOKALIKES = {
    "create refs/replace/<main>",
    "create refs/tags/main",
    "create refs/remotes/origin/main",
    "create refs/heads/MAIN",
}
EVERY_VARIANT |= LOOKALIKES


def _heads(s: Setup) -> dict[str, str]:
    out = g(s.bare, "for-each-ref", "--format=%(refname) %(objectname)").stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def _verify_json(s: Setup, remote: str) -> tuple[int, dict[str, object], str]:
    result = s.cli("authority", "verify", "--remote", remote, "--json")
    return result.exit_code, json.loads(result.output), result.output


def _rows(report: dict[str, object]) -> dict[str, dict[str, object]]:
    variants = report["variants"]
    assert isinstance(variants, list)
    return {row["variant"]: row for row in variants}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Setup, remote_serve.ServedRemote]]:
    s = make_setup(tmp_path, mode="cutover")
    with serving(s.bare) as daemon:
        yield s, daemon


def test_cutover_on_a_path_remote_holds_except_the_labelled_local_bypass(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    heads_before = _heads(s)

    status, report, output = _verify_json(s, str(s.bare))

    assert status == 0, output
    assert report["ok"] is True and report["boundary"] is False and report["transport"] == "path"
    rows = _rows(report)
    assert set(rows) == EVERY_VARIANT
    for name, row in rows.items():
        assert row["ok"] is True, row
        if name in ("integrator's push (credential as push option)", "feature branch"):
            assert row["actual"] == "allowed"
        elif name == "--receive-pack with hooks off":
            assert row["expected"] == "local-only bypass"
            assert row["actual"] == "allowed (hooks bypassed)"  # measured: nothing stops it locally
        else:
            assert (row["expected"], row["actual"]) == ("rejected", "rejected"), name
    assert _heads(s) == heads_before  # main restored, probe branches and the alias gone
    assert s.credential() not in output


def test_shadow_on_a_path_remote_expects_main_open_and_leaves_no_trace(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="shadow")
    heads_before = _heads(s)

    status, report, output = _verify_json(s, str(s.bare))

    assert status == 0, output
    rows = _rows(report)
    assert rows["plain push of main"]["actual"] == "allowed"
    assert rows["server-side symbolic ref to main"]["actual"] == "allowed"
    assert rows["--mirror"]["actual"] == "skipped"
    assert rows["push to refs/heads/HEAD"]["actual"] == "rejected"
    assert rows["delete main (--delete)"]["actual"] in ("allowed", "refused by git")
    assert all(rows[name]["actual"] == "allowed" for name in LOOKALIKES)  # and deleted again
    assert _heads(s) == heads_before
    # Probe pushes are marked, so post-receive spools none of them: they never become readiness events.
    assert s.spool_files() == []
    assert s.branch_pushed() == []


def test_over_git_daemon_the_remote_is_a_boundary(served: tuple[Setup, remote_serve.ServedRemote]) -> None:
    s, daemon = served
    heads_before = _heads(s)

    status, report, output = _verify_json(s, daemon.url)

    assert status == 0, output
    assert report["boundary"] is True and report["transport"] == "git"
    rows = _rows(report)
    assert rows["--receive-pack with hooks off"]["expected"] == "rejected"
    assert rows["--receive-pack with hooks off"]["actual"] in ("rejected", "refused")
    assert rows["GIT_CONFIG_GLOBAL turning hooks off"]["actual"] == "rejected"
    assert rows["server-side symbolic ref to main"]["actual"] == "rejected"  # bare found via authority.json
    for name in LOOKALIKES:
        assert (rows[name]["expected"], rows[name]["actual"]) == ("rejected", "rejected"), name
    assert _heads(s) == heads_before
    record = json.loads((s.cfg.state_dir / "authority.json").read_text())
    assert record["verify_result"] == "pass" and record["transport_kind"] == "server" and record["boundary"]
    assert s.credential() not in output and s.credential() not in json.dumps(record)


def test_a_broken_hook_is_reported_and_main_is_still_restored(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    (s.bare / "hooks" / "pre-receive").write_text("#!/bin/sh\nexit 0\n")
    heads_before = _heads(s)

    result = s.cli("authority", "verify", "--remote", str(s.bare))

    assert result.exit_code == 1
    assert "FAIL" in result.output and "plain push of main" in result.output
    assert _heads(s) == heads_before
    record = json.loads((s.cfg.state_dir / "authority.json").read_text())
    assert record["verify_result"] == "fail" and "plain push of main" in record["verify_failures"]


def test_the_table_names_the_guard_and_the_local_only_bypass(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    result = s.cli("authority", "verify", "--remote", f"file://{s.bare}")
    assert result.exit_code == 0, result.output
    assert "guard only" in result.output and "local-only bypass" in result.output
    assert "variant" in result.output and "expected" in result.output and "result: PASS" in result.output


@pytest.mark.parametrize(
    ("remote", "message"),
    [
        ("does-not-exist.git", "is not a directory"),
        ("ext::sh -c touch% /tmp/pwned", "remote helper"),
        ("-uhoh", "leading '-'"),
        ("ftp://example.com/repo.git", "unsupported transport"),
    ],
)
def test_bad_remotes_exit_2(tmp_path: Path, remote: str, message: str) -> None:
    s = make_setup(tmp_path, mode="cutover")
    heads_before = _heads(s)
    result = s.cli("authority", "verify", "--remote", remote)
    assert result.exit_code == 2 and message in result.output
    assert _heads(s) == heads_before


def test_verify_without_a_credential_exits_2(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    s.cfg.credential_file.unlink()
    result = s.cli("authority", "verify", "--remote", str(s.bare))
    assert result.exit_code == 2 and "hooks install" in result.output


def test_a_mode_that_contradicts_the_remote_is_bad_input(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    result = s.cli("authority", "verify", "--remote", str(s.bare), "--mode", "shadow")
    assert result.exit_code == 2 and "enforces cutover" in result.output


def test_the_credential_never_leaks(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="shadow")
    secret = s.credential()
    outputs = [
        s.cli("hooks", "install", "--remote", str(s.bare)).output,
        s.cli("hooks", "install", "--remote", str(s.bare), "--json").output,
        s.cli("authority", "verify", "--remote", str(s.bare)).output,
        s.cli("authority", "verify", "--remote", str(s.bare), "--json").output,
    ]
    sha = s.commit("feature")
    assert s.push("origin", f"{sha}:refs/heads/leak-check").returncode == 0
    wait_for(lambda: [e for e in s.branch_pushed() if e["branch"] == "leak-check"], what="the event")
    outputs.append(s.cli("hooks", "ingest", "--remote", str(s.bare), "--json").output)
    outputs.append(s.cli("status", "--json").output)

    for text in outputs:
        assert secret not in text
    for path in (s.cfg.state_dir / "authority.json", s.paths.ingest_log, s.cfg.db):
        if path.exists():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in (s.bare / "hooks" / "pre-receive").read_text()


def test_a_remote_without_hooks_fails_and_main_is_put_back_in_place(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover", install=False)
    ensure_credential(s.cfg)
    heads_before = _heads(s)

    status, report, output = _verify_json(s, str(s.bare))

    assert status == 1, output
    rows = _rows(report)
    assert rows["integrator's push (credential as push option)"]["ok"] is False
    assert rows["--no-verify"]["actual"] in ("allowed", "refused") and rows["--no-verify"]["ok"] is False
    assert _heads(s) == heads_before  # restored with update-ref, compare-and-swap, in the bare repository


def test_an_unreachable_bare_and_a_failing_integrator_push_mean_no_probes(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover", install=False)
    ensure_credential(s.cfg)
    heads_before = _heads(s)
    with serving(s.bare) as daemon:
        status, report, output = _verify_json(s, daemon.url)

    assert status == 1, output
    rows = _rows(report)
    assert rows["plain push of main"]["actual"] == "not run"
    assert rows["server-side symbolic ref to main"]["actual"] in ("not run", "skipped")
    assert _heads(s) == heads_before
