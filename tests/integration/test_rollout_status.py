"""``integrator rollout status``: live evidence read from a real store, built by ``integrator demo``.

One demo sandbox per module (a subprocess, about a second). The module fixture then moves it through
the rollout's stages with the real CLI and real git (a conflict blocks, the hooks are installed and
verified, a rollback to shadow, a shadow prediction that the legacy path settles) and takes the status
after each stage; the tests read those snapshots. The probes read the database read-only: the file is
never created, changed or given a -wal/-shm beside it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import INTEGRATOR, cli

from integrator.authority.remote import write_remote_mode
from integrator.config import build_config, load_config
from integrator.events import iso, utcnow
from integrator.rollout import load_rollout
from integrator.rollout.probes import blocked_evidence, events_evidence, mode_evidence, parity_evidence
from integrator.sandbox import Sandbox
from integrator.store import SCHEMA_VERSION

PROJECT = Path(__file__).resolve().parents[2]
# The slices this repository's roadmap declares.
_, EVENTS, SHADOW, CUTOVER, BLOCKED = load_rollout(PROJECT / "todos").plans[0].slices
WHEN = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
RECORD_REASON = "rollout evidence test"


@dataclass
class Story:
    root: Path
    config: Path
    db: Path
    remote: Path
    # stage -> slug -> evidence, as `rollout status --json` printed it
    evidence: dict[str, dict[str, str | None]] = field(default_factory=dict)
    table: str = ""
    db_digest_before: str = ""
    db_digest_after: str = ""
    events_stored: int = 0


def run_cli(config: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = cli(config, *args, input=input)
    assert result.returncode == 0, f"integrator {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def status_evidence(config: Path) -> dict[str, str | None]:
    out = run_cli(config, "rollout", "status", "--todos", str(PROJECT / "todos"), "--json").stdout
    data = json.loads(out)
    assert data["evidence_available"] is True
    return {row["slug"]: row["evidence"] for row in data["slices"]}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ndjson(slug: str, branch: str, sha: str, ready_at: str) -> str:
    now = iso(utcnow())
    lines = [
        {
            "type": "branch_pushed",
            "payload": {"branch": branch, "sha": sha, "remote": "origin", "pushed_at": now},
        },
        {
            "type": "review_approved",
            "payload": {"slug": slug, "sha": sha, "reviewer": "rev", "review_round": 1, "approved_at": now},
        },
        {
            "type": "finalize_ready",
            "payload": {"slug": slug, "branch": branch, "sha": sha, "worker": "w", "ready_at": ready_at},
        },
    ]
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    root = tmp_path_factory.mktemp("rollout-status") / "demo"
    done = subprocess.run(
        [INTEGRATOR, "demo", "--dir", str(root)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    config = root / "integrator.toml"
    cfg = load_config(config)
    sandbox = Sandbox(root / "repos", root / "repos" / "remote.git", cfg.repo)
    s = Story(root, config, cfg.db, sandbox.remote)

    # 1. The demo as it ends: read twice, with the file's bytes compared around the reads.
    s.db_digest_before = digest(s.db)
    s.evidence["demo"] = status_evidence(config)
    s.table = run_cli(config, "rollout", "status", "--todos", str(PROJECT / "todos")).stdout
    s.db_digest_after = digest(s.db)
    s.events_stored = len(json.loads(run_cli(config, "events", "--json", "--limit", "1000").stdout))

    # 2. Two branches change the same line: the first integrates, the second is blocked.
    shas = {}
    for name, value in (("clash-a", "45"), ("clash-b", "60")):
        worker = sandbox.worker(name)
        worker.start(f"feature/{name}")
        shas[name] = worker.commit(
            {"app/settings.txt": f"name = demo\ntheme = solarized-dark\ntimeout = {value}\n"}, name
        )
        worker.push(f"feature/{name}")
    first = utcnow()
    batch = ndjson("clash-a", "feature/clash-a", shas["clash-a"], iso(first))
    batch += ndjson("clash-b", "feature/clash-b", shas["clash-b"], iso(utcnow()))
    run_cli(config, "emit", "--wait", "--json", "-", input=batch)
    run_cli(config, "run", "--once")
    s.evidence["blocked"] = status_evidence(config)

    # 3. The remote's hooks, installed and verified (a path remote: a guard, not a boundary).
    run_cli(config, "hooks", "install", "--remote", str(s.remote))
    run_cli(config, "authority", "verify", "--remote", str(s.remote))
    s.evidence["verified"] = status_evidence(config)

    # 4. Back to shadow; a new candidate is predicted, then the legacy path lands it on main.
    run_cli(config, "rollback", "--reason", RECORD_REASON)
    legacy = sandbox.worker("legacy")
    legacy.start("feature/legacy")
    sha = legacy.commit({"app/legacy.txt": "legacy = yes\n"}, "legacy change")
    legacy.push("feature/legacy")
    run_cli(
        config, "emit", "--wait", "--json", "-", input=ndjson("legacy", "feature/legacy", sha, iso(utcnow()))
    )
    run_cli(config, "run", "--once")  # predicts would_integrate
    legacy.start("main")
    subprocess.run(["git", "merge", "--quiet", "--no-edit", "--no-ff", sha], cwd=legacy.path, check=True)
    subprocess.run(["git", "push", "--quiet", "origin", "HEAD:main"], cwd=legacy.path, check=True)
    run_cli(config, "run", "--once")  # sees it landed: the prediction gets its actual
    s.evidence["shadow"] = status_evidence(config)

    # 5. A half-finished switch: the remote is made to enforce cutover behind the store's back.
    write_remote_mode(s.remote, "cutover")
    s.evidence["mismatch"] = status_evidence(config)
    return s


def test_the_demo_store_shows_events_candidates_mode_and_followups(story: Story) -> None:
    ev = story.evidence["demo"]
    assert re.fullmatch(
        rf"store {re.escape(str(story.db))}: {story.events_stored} event\(s\), newest received {WHEN}; "
        r"candidates: 3 integrated, 1 superseded",
        ev[EVENTS] or "",
    ), ev[EVENTS]
    assert ev[SHADOW] == (
        "mode: cutover (from the configuration, never switched); predictions: none yet; "
        "cutover gate: fail (only 0 decided candidates; the gate needs at least 20)"
    )
    state = story.root / "state" / "authority.json"
    assert (
        ev[CUTOVER]
        == f"mode: cutover (from the configuration, never switched); hooks not installed (no install recorded in {state})"
    )
    assert ev[BLOCKED] == (
        "1 follow-up todo(s): theme-integration-blocked; "
        "follow-ups in the store: 0 open, 1 resolved; blocked now: none"
    )


def test_reading_the_store_changes_nothing_beside_it(story: Story) -> None:
    assert story.db_digest_before == story.db_digest_after
    # No connection was open, so the file was read as immutable: nothing created beside it.
    assert sorted(p.name for p in story.db.parent.glob("integrator.db*")) == ["integrator.db"]


def test_the_table_puts_each_fact_on_its_own_line(story: Story) -> None:
    lines = story.table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(SHADOW))
    assert (
        lines[start + 1].split("evidence: ", 1)[1] == "mode: cutover (from the configuration, never switched)"
    )
    assert lines[start + 2].strip().startswith("predictions: none yet; cutover gate: fail")
    assert lines[-1].startswith("validate: ")


def test_a_blocked_candidate_and_its_open_followup(story: Story) -> None:
    ev = story.evidence["blocked"]
    assert (ev[EVENTS] or "").endswith("candidates: 1 blocked, 4 integrated, 1 superseded"), ev[EVENTS]
    assert ev[BLOCKED] == (
        "2 follow-up todo(s): clash-b-integration-blocked, theme-integration-blocked; "
        "follow-ups in the store: 1 open (clash-b), 1 resolved; blocked now: 1 (clash-b: merge_conflict)"
    )


def test_installed_and_verified_hooks_say_guard_or_boundary(story: Story) -> None:
    ev = story.evidence["verified"]
    remote = re.escape(str(story.remote))
    assert re.fullmatch(
        rf"mode: cutover \(from the configuration, never switched\); "
        rf"hooks installed on {remote} at {WHEN}; the remote enforces cutover; "
        rf"authority verify: pass at {WHEN} in cutover mode over path {remote}: guard only \(local transport\)",
        ev[CUTOVER] or "",
    ), ev[CUTOVER]


def test_after_rollback_the_mode_and_a_settled_prediction(story: Story) -> None:
    ev = story.evidence["shadow"]
    assert re.fullmatch(
        rf"mode: shadow since {WHEN} \(by [^:]+: {RECORD_REASON}\); "
        r"predictions: 1, decided 1, agreement 100\.0% \(0 disagreement\(s\)\); "
        r"cutover gate: fail \(only 1 decided candidates; the gate needs at least 20\)",
        ev[SHADOW] or "",
    ), ev[SHADOW]
    assert "the remote enforces shadow; authority verify: pass" in (ev[CUTOVER] or "")
    assert "MISMATCH" not in (ev[CUTOVER] or "")


def test_a_remote_enforcing_another_mode_than_the_store_is_a_mismatch(story: Story) -> None:
    assert "the remote enforces cutover while the store says shadow: MISMATCH" in (
        story.evidence["mismatch"][CUTOVER] or ""
    )


def test_the_roadmap_decides_which_probes_show_where(story: Story, tmp_path: Path) -> None:
    """A new entry names existing probes and shows their facts; no code knows its name."""
    todos = tmp_path / "todos"
    shutil.copytree(PROJECT / "todos", todos)
    with (todos / "roadmap.yaml").open("a") as fh:
        fh.write("- slug: release-notes\n  after: integration-blocked-flow\n  probes: [events, blocked]\n")
    out = run_cli(story.config, "rollout", "status", "--todos", str(todos), "--json").stdout
    rows = {row["slug"]: row for row in json.loads(out)["slices"]}
    now = status_evidence(story.config)
    assert rows["release-notes"]["evidence"] == f"{now[EVENTS]}; {now[BLOCKED].split('; ', 1)[1]}"
    assert rows["release-notes"]["rollout"] is False  # named by no rollout's slices
    result = cli(story.config, "rollout", "validate", "--todos", str(todos), "--root", str(PROJECT))
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_absent_database_is_said_and_never_created(story: Story, tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    config = tmp_path / "integrator.toml"
    config.write_text(f'repo = "{load_config(story.config).repo}"\ndb = "{db}"\n')
    ev = status_evidence(config)
    assert ev[EVENTS] == f"database {db}: absent (nothing emitted yet)"
    assert ev[SHADOW] == "mode: shadow (configured; no database yet)"
    assert ev[BLOCKED] is None  # no todos directory, no store: nothing to show
    assert not db.exists() and not list(tmp_path.glob("never.db*"))


def test_unusable_databases_are_named_and_left_untouched(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all, just text\n" * 40)
    before = garbage.read_bytes()
    cfg = build_config({"repo": str(tmp_path), "db": str(garbage)}, None)
    assert events_evidence(cfg) == f"database {garbage}: not an SQLite database"
    assert mode_evidence(cfg) == f"mode: unknown (database {garbage}: not an SQLite database)"
    assert garbage.read_bytes() == before

    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    cfg = build_config({"repo": str(tmp_path), "db": str(newer)}, None)
    assert (
        parity_evidence(cfg)
        == f"database {newer}: schema version 99 is newer than this integrator's {SCHEMA_VERSION}"
    )

    empty = tmp_path / "empty.db"
    empty.touch()
    cfg = build_config({"repo": str(tmp_path), "db": str(empty)}, None)
    assert blocked_evidence(cfg) == f"database {empty}: not initialised (run `integrator init`)"
    assert empty.stat().st_size == 0


def test_a_writer_in_the_middle_of_a_transaction_does_not_hold_status_up(story: Story) -> None:
    cfg = load_config(story.config)
    before = events_evidence(cfg)
    writer = sqlite3.connect(story.db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO settings (key, value) VALUES ('rollout-test', '1')")
        writer.execute("UPDATE candidates SET status = 'waiting'")
        started = time.monotonic()
        during = events_evidence(cfg)
        took = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    # The uncommitted change is invisible, and the reader did not wait out the writer's lock.
    assert during == before and "waiting" not in (during or "")
    assert took < 1.0, took
