"""post-receive + ingestion: every pushed branch becomes one branch_pushed event, without the push waiting."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from authority_helpers import Setup, g, make_setup
from conftest import wait_for

from integrator.authority.spool import STALE_SPOOL_S, ingest_detached


def _events_for(s: Setup, branches: set[str]) -> list[dict[str, object]]:
    return [e for e in s.branch_pushed() if e["branch"] in branches]


def test_a_multi_ref_push_becomes_one_event_per_branch(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover", remote="upstream")
    a = s.commit("a")
    b = s.commit("b")

    result = s.push("origin", f"{a}:refs/heads/feat/a", f"{b}:refs/heads/feat-b", f"{b}:refs/tags/v1")

    assert result.returncode == 0, result.stderr
    found = wait_for(
        lambda: len(_events_for(s, {"feat/a", "feat-b"})) == 2 and s.branch_pushed(), what="events"
    )
    by_branch = {e["branch"]: e for e in found}
    assert by_branch["feat/a"]["sha"] == a and by_branch["feat-b"]["sha"] == b
    assert {e["remote"] for e in found} == {"upstream"}
    assert all(e["pushed_at"] and e["pusher"] for e in found)
    assert len(found) == 2  # the tag is not a branch
    wait_for(lambda: not s.spool_files(), what="the spool to be consumed")


def test_deletions_and_probe_pushes_are_not_events(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    sha = s.commit("x")
    assert s.push("origin", f"{sha}:refs/heads/keep").returncode == 0
    wait_for(lambda: _events_for(s, {"keep"}), what="the first event")

    assert s.push("origin", ":refs/heads/keep").returncode == 0
    assert s.push("-o", "integrator-probe=test", "origin", f"{sha}:refs/heads/probed").returncode == 0
    assert s.push("origin", f"{sha}:refs/heads/after").returncode == 0

    wait_for(lambda: _events_for(s, {"after"}), what="the last event")
    assert [e["branch"] for e in s.branch_pushed()] == ["keep", "after"]


def test_the_push_never_waits_for_ingestion(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    sha = s.commit("while ingestion is blocked")
    s.paths.spool.mkdir(parents=True, exist_ok=True)
    with open(s.paths.spool_lock, "a+b") as lock:
        # Holding the spool lock stalls any ingestion; the push must finish regardless.
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        result = s.push("origin", f"{sha}:refs/heads/quick")
        assert result.returncode == 0, result.stderr
        assert s.spool_files(), "the hook spooled the push"
        assert s.branch_pushed() == []
    wait_for(lambda: _events_for(s, {"quick"}), what="the event after the lock is released")


def test_a_broken_store_never_fails_the_push_and_the_spool_waits(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    s.cfg.db.write_bytes(b"this is not sqlite")
    sha = s.commit("x")

    result = s.push("origin", f"{sha}:refs/heads/kept")

    assert result.returncode == 0, result.stderr
    wait_for(
        lambda: s.paths.ingest_log.exists() and "not an SQLite" in s.paths.ingest_log.read_text(),
        what="the ingestion error in ingest.log",
    )
    assert len(s.spool_files()) == 1
    s.cfg.db.unlink()
    report = ingest_detached(s.cfg, s.bare)
    assert (report.files, report.stored) == (1, 1)
    assert _events_for(s, {"kept"})[0]["sha"] == sha


def test_concurrent_pushes_each_land_exactly_once(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    shas = [s.commit(f"c{i}") for i in range(6)]

    def push(i: int) -> int:
        return s.push("origin", f"{shas[i]}:refs/heads/par-{i}").returncode

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(push, range(6))) == [0] * 6

    names = {f"par-{i}" for i in range(6)}
    wait_for(lambda: len(_events_for(s, names)) == 6, timeout=30, what="six events")
    wait_for(lambda: not s.spool_files(), what="an empty spool")
    assert sorted(e["sha"] for e in _events_for(s, names)) == sorted(shas)


def test_concurrent_ingestions_consume_each_spool_file_once(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    s.paths.spool.mkdir(parents=True, exist_ok=True)
    sha = s.commit("spooled by hand")
    for i in range(40):
        (s.paths.spool / f"9{i}.0.push").write_text(f"{sha} refs/heads/hand-{i} tester\nend\n")
    command = [
        sys.executable,
        "-I",
        "-c",
        "from integrator.cli import main; main()",
        "--config",
        str(s.config_path),
        "hooks",
        "ingest",
        "--remote",
        str(s.bare),
        "--json",
    ]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    reports = [json.loads(p.communicate(timeout=60)[0]) for p in procs]

    assert all(p.returncode == 0 for p in procs)
    assert sum(r["files"] for r in reports) == 40
    assert sum(r["events"] for r in reports) == 40
    assert sum(r["stored"] for r in reports) == 40
    assert len(_events_for(s, {f"hand-{i}" for i in range(40)})) == 40
    assert not s.spool_files()


def test_unfinished_spool_files_wait_unless_stale(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    s.paths.spool.mkdir(parents=True, exist_ok=True)
    sha = s.commit("half")
    fresh = s.paths.spool / "1.0.push"
    fresh.write_text(f"{sha} refs/heads/being-written tester\n")
    stale = s.paths.spool / "2.0.push"
    stale.write_text(f"{sha} refs/heads/crashed-hook tester\n{sha} refs/he")
    old = stale.stat().st_mtime - STALE_SPOOL_S - 5
    os.utime(stale, (old, old))

    report = ingest_detached(s.cfg, s.bare)

    assert report.files == 1 and report.stored == 1
    assert fresh.exists() and not stale.exists()
    assert [e["branch"] for e in s.branch_pushed()] == ["crashed-hook"]
    assert report.skipped and "malformed" in report.skipped[0]


def test_a_branch_name_the_events_reject_is_skipped_not_fatal(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    s.paths.spool.mkdir(parents=True, exist_ok=True)
    sha = s.commit("odd")
    (s.paths.spool / "1.0.push").write_text(
        f"{sha} refs/heads/-dash tester\n{sha} refs/heads/fine tester\nend\n"
    )

    result = s.cli("hooks", "ingest", "--remote", str(s.bare))

    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "1 new" in result.output
    assert [e["branch"] for e in s.branch_pushed()] == ["fine"]


def test_ingest_rejects_a_path_that_is_not_a_bare_repository(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover", install=False)
    result = s.cli("hooks", "ingest", "--remote", str(s.work))
    assert result.exit_code == 2 and "is not a bare repository" in result.output
    assert g(s.work, "status", "--porcelain").stdout == ""


def test_a_marker_left_by_a_crash_does_not_stop_ingestion_for_good(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    s.paths.spool_wanted.write_text("")
    old = s.paths.spool_wanted.stat().st_mtime - 3600
    os.utime(s.paths.spool_wanted, (old, old))
    sha = s.commit("after a crash")

    assert s.push("origin", f"{sha}:refs/heads/after-crash").returncode == 0

    wait_for(lambda: _events_for(s, {"after-crash"}), what="the event despite the stale marker")


def test_the_integrators_own_push_of_main_is_not_a_branch_pushed(tmp_path: Path) -> None:
    """A credentialed push of main is the integrator landing; a wrong credential changes nothing here
    (pre-receive refuses it in cutover), and in shadow a legacy push of main is still recorded."""
    s = make_setup(tmp_path, mode="shadow")
    landed = s.commit("the integrator's merge")
    result = s.integrator_push("origin", f"{landed}:refs/heads/main", f"{landed}:refs/heads/feat/with-it")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: _events_for(s, {"feat/with-it"}), what="the feature branch's event")
    legacy = s.commit("a legacy push")
    forged = s.push("-o", "integrator-token=" + "0" * 64, "origin", f"{legacy}:refs/heads/main")
    assert forged.returncode == 0, forged.stderr  # shadow: legacy pushes of main pass and are recorded
    wait_for(lambda: _events_for(s, {"main"}), what="the legacy push of main")
    wait_for(lambda: not s.spool_files(), what="the spool to be consumed")
    assert [(e["branch"], e["sha"]) for e in s.branch_pushed()] == [
        ("feat/with-it", landed),
        ("main", legacy),
    ]
