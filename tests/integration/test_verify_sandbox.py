"""The verify command is the candidate's code: it runs sandboxed (issue 12 item 1), through the real CLI.

A hostile ``ci.sh`` tries to read every integrator file, escape or undo the sandbox, write the bare
repository and push ``main`` over ``git://`` and over the path with whatever it found. ``main`` must
hold only integrator merges, no encoding of the secret may land anywhere the integrator stores or
shows, and the candidate's outcome must follow the script's exit status.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import socket
import sys
from pathlib import Path

import pytest
from conftest import as_json, cli, db_rows, emit_ready, make_config, ok, push_feature
from support.serving import serving

from integrator import git, isolation
from integrator.authority.remote import RemotePaths
from integrator.config import Config
from integrator.sandbox import Sandbox

pytestmark = pytest.mark.skipif(
    isolation.unavailable_reason(True) is not None, reason="no user namespaces on this machine"
)


def hostile_script(cfg: Config, sandbox: Sandbox, url: str) -> str:
    q = shlex.quote
    secrets_at = [cfg.credential_file, RemotePaths(sandbox.remote).credential, cfg.db]
    secrets_at += [cfg.db.with_name(cfg.db.name + "-wal"), cfg.config_path]
    trees = [cfg.state_dir, cfg.todos_dir, cfg.repo, sandbox.remote]
    bare = q(str(sandbox.remote))
    return f"""#!/bin/sh
found=$(mktemp)
for f in {" ".join(q(str(p)) for p in secrets_at)}; do
  echo "read $f: $(wc -c < "$f" 2>/dev/null || echo none) bytes"; cat "$f" >> "$found" 2>/dev/null
done
for d in {" ".join(q(str(p)) for p in trees)}; do
  echo "listed $d: $(find "$d" -type f 2>/dev/null | wc -l) files"
  find "$d" -type f -exec cat {{}} + >> "$found" 2>/dev/null
done
echo "processes seen: $(ls /proc | grep -c '^[0-9]')"
for p in {" ".join(q(str(p)) for p in trees)}; do umount -l "$p" 2>/dev/null && echo "UNMOUNTED $p"; done
unshare -Urm sh -c 'umount -l {bare} && echo UNMOUNTED-NESTED' 2>/dev/null
mkdir -p {bare}/refs/heads 2>/dev/null; echo 0000 > {bare}/refs/heads/main 2>/dev/null
echo 'exit 0' > {bare}/hooks/pre-receive 2>/dev/null
echo "found $(wc -c < "$found") bytes"
base64 -w0 < "$found"; echo; rev < "$found"; od -An -tx1 < "$found" | tr -d ' \\n'; echo
git init -q . && git add -A && git -c user.name=evil -c user.email=e@x commit -qm evil
for token in x $(tr -c 'A-Za-z0-9_-' '\\n' < "$found" | sort -u); do
  git push -q -o integrator-token="$token" -o integrator-probe=x {q(url)} HEAD:refs/heads/main 2>/dev/null && echo PUSHED-GIT
  git push -q -o integrator-token="$token" {bare} HEAD:refs/heads/main 2>/dev/null && echo PUSHED-PATH
done
echo "sandbox probe done"
[ -e fail-me ] && exit 3
exit 0
"""


def every_stored_text(cfg: Config) -> str:
    """What the integrator stores or shows: every database row, the todos, status, events, blocked."""
    tables = [r["name"] for r in db_rows(cfg, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    parts = [json.dumps([dict(r) for r in db_rows(cfg, f"SELECT * FROM {t}")], default=str) for t in tables]
    parts += [p.read_text(errors="replace") for p in cfg.todos_dir.rglob("*") if p.is_file()]
    for args in (("status", "--json"), ("events", "--json"), ("blocked", "--json"), ("status",)):
        parts.append(ok(cfg, *args))
    return "\n".join(parts)


async def test_a_hostile_verify_finds_nothing_and_main_holds_only_integrator_merges(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, verify_command=["sh", "ci.sh"], verify_timeout_s=120.0)
    ok(cfg, "hooks", "install", "--remote", str(sandbox.remote))
    secret = cfg.credential_file.read_text().strip()
    hooks_before = {p.name: p.read_bytes() for p in (sandbox.remote / "hooks").iterdir()}
    with serving(sandbox.remote) as daemon:
        git.run_sync(["remote", "set-url", "origin", daemon.url], cwd=sandbox.integrator_repo)
        script = hostile_script(cfg, sandbox, daemon.url)
        failing = push_feature(sandbox, "hostile-fails", {"ci.sh": script, "fail-me": "1\n"})
        passing = push_feature(sandbox, "hostile-passes", {"ci.sh": script, "p.txt": "p\n"})
        initial = sandbox.main_sha()
        await emit_ready(cfg, failing, passing)

        result = cli(cfg, "run", "--once", timeout=300)
        assert result.returncode == 0, result.stderr

    # The outcome follows the exit status: 3 blocks, 0 integrates.
    [blocked] = as_json(cfg, "blocked")
    assert (blocked["slug"], blocked["reason_code"]) == ("hostile-fails", "verify_failed")
    evidence = blocked["evidence"]
    assert evidence["exit_status"] == 3 and evidence["isolation"] == "namespaces"
    log = evidence["log_tail"]
    assert "sandbox probe done" in log
    for marker in ("UNMOUNTED", "PUSHED-GIT", "PUSHED-PATH"):
        assert marker not in log, log
    assert "found 0 bytes" in log, log
    assert "processes seen: " in log and int(log.split("processes seen: ")[1].split()[0]) < 20
    # main: the initial commit and one integrator merge of the passing candidate, nothing else.
    history = [line.split() for line in sandbox.main_log("%H %P")]
    assert [h[0] for h in history[1:]] == [initial]
    assert history[0][1:] == [initial, passing.sha]
    assert "Integrated-By: " in "\n".join(sandbox.main_log("%B"))
    assert {p.name: p.read_bytes() for p in (sandbox.remote / "hooks").iterdir()} == hooks_before
    # No encoding of the secret anywhere the integrator keeps or shows things.
    stored = every_stored_text(cfg)
    for form in (
        secret,
        secret[::-1],
        base64.b64encode(secret.encode()).decode()[:-4],
        secret.encode().hex(),
    ):
        assert form not in stored
    status = as_json(cfg, "status")
    assert status["mode"] == "cutover"
    assert status["verify_sandbox"]["kind"] == "namespaces"
    assert "verify sandbox: namespaces" in ok(cfg, "status")


async def test_without_a_sandbox_cutover_is_refused_and_a_running_integrator_pauses(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, mode="shadow", verify_command=["true"], verify_isolation="none")
    refused = cli(cfg, "cutover")
    assert refused.returncode == 1
    assert "verify refused: no sandbox (verify_isolation = none in the config)" in refused.stderr
    assert as_json(cfg, "status")["mode"] == "shadow"

    cfg = make_config(tmp_path, sandbox, verify_command=["true"], verify_isolation="none")  # cutover
    feature = push_feature(sandbox, "unsandboxed", {"u.txt": "u\n"})
    await emit_ready(cfg, feature)
    main = sandbox.main_sha()
    ok(cfg, "run", "--once")
    status = as_json(cfg, "status")
    assert status["mode"] == "cutover" and status["fault"] is None
    assert status["paused"] and "verify_accept_unisolated = true" in status["pause"]["reason"]
    assert [q["status"] for q in status["queue"]] == ["queued"]
    assert sandbox.main_sha() == main
    assert db_rows(cfg, "SELECT 1 FROM transitions WHERE to_status = 'in_progress'") == []
    assert "verify refused" in ok(cfg, "status")

    # Accepting the risk in the config, then unpausing, lets it run (unisolated, env still allowlisted).
    cfg = make_config(
        tmp_path, sandbox, verify_command=["true"], verify_isolation="none", verify_accept_unisolated=True
    )
    ok(cfg, "unpause")
    ok(cfg, "run", "--once")
    assert [o["type"] for o in as_json(cfg, "status")["recent_outcomes"]] == ["integration_completed"]
    assert "risk accepted" in ok(cfg, "status")


@pytest.mark.parametrize("network", [False, True])
async def test_verify_sees_only_the_allowlisted_environment_and_the_network_as_configured(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, network: bool
) -> None:
    monkeypatch.setenv("INTEGRATOR_LEAKED", "must-not-show")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    connect = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)"
    hidden = f"! test -e {shlex.quote(str(sandbox.remote / 'HEAD'))} && ! test -s {shlex.quote(str(tmp_path / 'integrator.db'))}"
    script = (
        f"set -x; {hidden} && "
        f'test "$HOME" != {shlex.quote(os.environ["HOME"])} && test -z "$INTEGRATOR_LEAKED" '
        f'&& test "$EXTRA" = yes && {"" if network else "!"} {shlex.quote(sys.executable)} -c "{connect}"'
    )
    cfg = make_config(
        tmp_path,
        sandbox,
        verify_command=["sh", "-c", script],
        verify_env={"EXTRA": "yes"},
        verify_network=network,
    )
    feature = push_feature(sandbox, "envcheck", {"e.txt": "e\n"})
    await emit_ready(cfg, feature)
    ok(cfg, "run", "--once")
    listener.close()
    status = as_json(cfg, "status")
    assert status["blocked"] == [], status["blocked"][0]["evidence"]
    assert [o["type"] for o in status["recent_outcomes"]] == ["integration_completed"]
    assert status["verify_sandbox"]["network"] is network
