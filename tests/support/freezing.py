"""Test-only harness: freeze a real lease holder (SIGSTOP of its process group), let another take over,
resume it, and check that the frozen one changed nothing (issue 13's acceptance).

One round (:func:`freeze_round`) builds a sandbox with the integrator's hooks installed (cutover),
one candidate, and two real ``integrator run`` processes, each the leader of its own process group:

- ``old`` runs through ``killpoints`` and stops itself at the named phase (then the test stops its
  whole group); for ``push`` a wrapper around the remote's pre-receive hook stops the old holder's
  group and the push's own group (its git push, receive-pack, the hook) while the push is inside the
  remote, before the real hook decides;
- ``new`` starts once ``old`` is frozen, takes the lease when it expires, and must integrate the
  candidate;
- ``old`` resumes and must return to standby without a write and without an error.

The suite runs a few phases; ``bench/freeze.py`` loops over random ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integrator import git
from integrator.authority.hooks import install_hooks
from integrator.authority.remote import RemotePaths
from integrator.config import Config, build_config, write_config
from integrator.events import make_event, utcnow
from integrator.sandbox import Sandbox
from integrator.service import Integrator
from support import killpoints

INTEGRATOR = str(Path(sys.executable).with_name("integrator"))
# Phases a holder can be frozen at; "push" is inside the remote, during the push of main.
FREEZE_POINTS = ("dequeued", "verified_ready", "merged", "tested", "before_push", "push")
TTL = 1.0
# Longer than the store's busy timeout (10 s): a standby that waited that long says so in its log.
BUSY_WAIT_S = 15.0


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Holder:
    """A background ``integrator run -v`` leading its own process group, its log in a file."""

    def __init__(self, cfg: Config, root: Path, name: str, probe: dict[str, str] | None = None) -> None:
        self.log = root / f"{name}.log"
        program = killpoints.command("integrator") if probe else [INTEGRATOR]
        with self.log.open("w") as err:
            self.popen = subprocess.Popen(
                [*program, "--config", str(cfg.config_path), "run", "-v"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, **(probe or {})},
                start_new_session=True,
            )
        self.holder = f"{socket.gethostname()}:{self.popen.pid}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stopped(self) -> bool:
        try:
            stat = Path(f"/proc/{self.popen.pid}/stat").read_text()
        except OSError:
            return False
        return stat[stat.rfind(")") + 2 :].startswith("T")

    def signal_group(self, sig: signal.Signals) -> None:
        os.killpg(self.popen.pid, sig)

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(60)

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGCONT)
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(30)


PUSH_FREEZER = """#!/bin/sh
# Test wrapper: the first push of main that reaches the remote freezes the pushing holder's process
# group and its own (git push, receive-pack, this hook), then runs the real hook once thawed.
input=$(cat)
case $input in *" refs/heads/main"*)
	if [ ! -e {flag} ]; then
		: >{flag}
		read -r line </proc/$$/stat
		set -- ${{line##*) }}
		printf '%s\\n' "$3" >{pgid}
		kill -STOP -$(cat {holder_pgid}) -"$3"
	fi
	;;
esac
printf '%s\\n' "$input" | {real}
"""


def install_push_freezer(bare: Path, root: Path) -> tuple[Path, Path]:
    """Wrap the remote's pre-receive; returns (file to write the holder's pgid in, file the push's pgid lands in)."""
    hooks = RemotePaths(bare).hooks
    real = hooks / "pre-receive.real"
    (hooks / "pre-receive").rename(real)
    holder_pgid, push_pgid = root / "holder.pgid", root / "push.pgid"
    script = PUSH_FREEZER.format(
        flag=root / "push.frozen", pgid=push_pgid, holder_pgid=holder_pgid, real=real
    )
    wrapper = hooks / "pre-receive"
    wrapper.write_text(script)
    wrapper.chmod(0o755)
    return holder_pgid, push_pgid


def make_round_config(root: Path, sandbox: Sandbox, **overrides: Any) -> Config:
    data: dict[str, Any] = {
        "repo": str(sandbox.integrator_repo),
        "db": str(root / "integrator.db"),
        "todos_dir": str(root / "todos"),
        "state_dir": str(root / "state"),
        "credential_file": str(root / "integrator.credential"),
        "mode": "cutover",
        "lease_ttl_s": TTL,
        "lease_renew_s": TTL / 4,
        "idle_check_s": 1.0,
        "git_timeout_s": 60.0,
        **overrides,
    }
    path = root / "integrator.toml"
    cfg = build_config(data, path)
    write_config(cfg, path)
    return cfg


async def _declare_ready(cfg: Config, slug: str, branch: str, sha: str) -> None:
    now = utcnow()
    async with await Integrator.open(cfg) as integ:
        await integ.emit(
            [
                make_event(
                    "review_approved",
                    {"slug": slug, "sha": sha, "reviewer": "r", "review_round": 1, "approved_at": now},
                ),
                make_event(
                    "branch_pushed", {"branch": branch, "sha": sha, "remote": "origin", "pushed_at": now}
                ),
                make_event(
                    "finalize_ready",
                    {"slug": slug, "branch": branch, "sha": sha, "worker": "w", "ready_at": now},
                ),
            ]
        )


def rows(cfg: Config, sql: str) -> list[dict[str, Any]]:
    import sqlite3

    conn = sqlite3.connect(f"file:{cfg.db}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


@dataclass
class RoundResult:
    phase: str
    takeover_s: float
    refused_by_fence: bool
    frozen_in_write: bool  # the freeze caught it inside a write transaction: no takeover until resumed
    old_log: str = field(repr=False)


def freeze_round(root: Path, phase: str, *, timeout: float = 60.0) -> RoundResult:
    """One freeze–takeover–resume round; raises AssertionError naming the first broken invariant."""
    sandbox = Sandbox.create(root / "sb")
    cfg = make_round_config(root, sandbox)
    install_hooks(cfg, sandbox.remote)
    worker = sandbox.worker("w")
    worker.start("feature/frozen")
    sha = worker.commit({"frozen.txt": "f\n"}, "frozen: change")
    worker.push("feature/frozen")
    asyncio.run(_declare_ready(cfg, "frozen", "feature/frozen", sha))
    main_before = sandbox.main_sha()

    probe_log = root / "probe.log"
    holders: list[Holder] = []
    try:
        if phase == "push":
            holder_pgid, push_pgid = install_push_freezer(sandbox.remote, root)
            old = Holder(cfg, root, "old", {killpoints.PROBE_LOG: str(probe_log)})
            holder_pgid.write_text(f"{old.popen.pid}\n")
            holders.append(old)
            wait(push_pgid.exists, timeout, "the old holder's push to reach the remote")
            push_group = int(push_pgid.read_text())
            wait(old.stopped, timeout, "the old holder to stop")
        else:
            probe = {killpoints.STOP_AT: phase, killpoints.PROBE_LOG: str(probe_log)}
            old = Holder(cfg, root, "old", probe)
            holders.append(old)
            wait(old.stopped, timeout, f"the old holder to stop at {phase}")
            old.signal_group(signal.SIGSTOP)  # the whole group, as an outside freeze would
            push_group = 0
        frozen_at = time.monotonic()
        assert sandbox.main_sha() == main_before, "main moved before the takeover"

        new = Holder(cfg, root, "new")
        holders.append(new)

        def thaw() -> None:
            if push_group:
                os.killpg(push_group, signal.SIGCONT)
            old.signal_group(signal.SIGCONT)

        in_write = False
        try:
            wait(lambda: _holder(cfg) == new.holder, BUSY_WAIT_S, "the new holder to take the lease")
        except AssertionError:
            # Frozen inside a write transaction (its lease renewal, say): SQLite's write lock is held
            # by a stopped process, so nobody can write until it resumes. The standby must have waited
            # it out alive and must take over once the old holder, resumed, finds its lease expired.
            if "event=store_busy" not in new.text() or new.popen.poll() is not None:
                raise
            in_write = True
            thaw()
            # Either process may take it now (the old one, back on standby, as a new tenure).
            wait(lambda: _fencing(cfg) >= 2, timeout, "a new tenure after the lock")
        takeover_s = time.monotonic() - frozen_at
        wait(lambda: _queue(cfg) == "integrated", timeout, "the new holder to integrate the candidate")
        integrated_main = sandbox.main_sha()

        if not in_write:
            thaw()
        wait(lambda: "event=standby_again" in old.text(), timeout, "the old holder to return to standby")
        assert old.popen.poll() is None, f"the old holder exited: {old.text()[-3000:]}"
        assert new.popen.poll() is None, f"the new holder exited: {new.text()[-3000:]}"

        # Nothing the old holder pushed landed, and it wrote nothing after the takeover.
        assert sandbox.main_sha() == integrated_main, "main moved after the new holder integrated"
        trailers = [
            t
            for t in git.run_sync(
                ["log", "--format=%(trailers:key=Candidate-Sha,valueonly)", "refs/heads/main", "--"],
                cwd=sandbox.remote,
            ).stdout.split()
            if t
        ]
        assert trailers == [sha], f"candidate merged {trailers.count(sha)} times: {trailers}"
        new_fencing = rows(cfg, "SELECT fencing FROM leases")[0]["fencing"]
        assert new_fencing == 2, new_fencing
        old_writes = rows(cfg, "SELECT from_status, to_status, reason FROM transitions WHERE fencing = 1")
        assert [(w["from_status"], w["to_status"]) for w in old_writes] == [("queued", "in_progress")], (
            old_writes
        )
        done = rows(cfg, "SELECT fencing FROM transitions WHERE to_status = 'integrated'")
        assert [d["fencing"] for d in done] == [2], f"credited to {done}"
        completed = rows(cfg, "SELECT payload FROM events WHERE type = 'integration_completed'")
        assert len(completed) == 1 and json.loads(completed[0]["payload"])["main_after"] == integrated_main
        assert rows(cfg, "SELECT * FROM events WHERE type = 'integration_blocked'") == []
        old_log = old.text()
        for holder in (old, new):
            assert "Traceback" not in holder.text(), holder.text()[-3000:]
        refused = "remote refused fencing number 1" in old_log
        if phase == "push" and not in_write:
            assert refused, f"the remote did not refuse the resumed push: {old_log[-3000:]}"
        for holder in (old, new):
            assert holder.stop() == 0, holder.text()[-3000:]
        return RoundResult(phase, takeover_s, refused, in_write, old_log)
    finally:
        for holder in holders:
            holder.kill()


def _holder(cfg: Config) -> str | None:
    try:
        found = rows(cfg, "SELECT holder, expires_at FROM leases")
    except Exception:
        return None
    if not found or found[0]["holder"] is None or found[0]["expires_at"] <= time.time():
        return None
    return str(found[0]["holder"])


def _fencing(cfg: Config) -> int:
    found = rows(cfg, "SELECT fencing FROM leases")
    return int(found[0]["fencing"]) if found else 0


def holds_write_lock(pid: int, db: Path) -> bool:
    """Whether ``pid`` holds SQLite's WAL write lock on ``db`` (a POSIX lock on byte 120 of its -shm)."""
    try:
        inode = Path(f"{db}-shm").stat().st_ino
    except OSError:
        return False
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        # "1: POSIX ADVISORY WRITE <pid> <maj:min:inode> <start> <end>"
        mine = len(fields) >= 8 and fields[1] == "POSIX" and fields[4] == str(pid)
        if mine and fields[5].rsplit(":", 1)[-1] == str(inode) and fields[6] == "120":
            return True
    return False


def freeze_outside_a_write(pid: int, db: Path) -> None:
    """SIGSTOP ``pid`` at a moment it holds no database write transaction open (else a standby could
    not take over before it resumes: SQLite's write lock belongs to the stopped process)."""
    for _ in range(1000):
        os.kill(pid, signal.SIGSTOP)
        wait(lambda: Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("T"), 10, "a stop")
        if not holds_write_lock(pid, db):
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.005)
    raise AssertionError("the process never left its write transaction")


def _queue(cfg: Config) -> str:
    found = rows(cfg, "SELECT status FROM queue")  # empty until a check cycle queued the candidate
    return str(found[0]["status"]) if found else "not queued"
