"""FR5.1, FR5.3 and verification 4: shadow never touches main; blocked work is evidence-rich and resumable.

FR5.2 (cutover makes the integrator the only writer of main) is proven with the remote's hooks in
test_fr2_authority.py together with FR2 and verification 3.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import cli, make_config, push_feature
from helpers import candidate, emit_cli, merged_candidates, run_once, status
from ruamel.yaml import YAML

from integrator import git
from integrator.sandbox import Sandbox


def test_fr5_1_shadow_runs_the_singleton_without_touching_main(tmp_path: Path, sandbox: Sandbox) -> None:
    cfg = make_config(tmp_path, sandbox, mode="shadow")
    clean = push_feature(sandbox, "clean", {"shared.txt": "clean\n"})
    clash = push_feature(sandbox, "clash", {"shared.txt": "clash\n"})  # from the same base: they conflict
    emit_cli(cfg, clean)
    main_before = sandbox.main_sha()
    run_once(cfg)
    assert sandbox.main_sha() == main_before  # no push in shadow
    # The legacy path lands `clean`; a conflicting candidate then gets a would_block prediction.
    clean.worker.start("main", base=f"origin/{clean.branch}")
    clean.worker.push("main")
    emit_cli(cfg, clash)
    run_once(cfg)
    report = json.loads(cli(cfg, "shadow-report", "--json").stdout)
    assert report["predicted"] == 2 and report["decided"] == 1 and report["agreements"] == 1
    predictions = {row["slug"]: row["prediction"] for row in _predictions(cfg.db)}
    assert predictions == {"clean": "would_integrate", "clash": "would_block"}
    assert candidate(cfg, "clean")["status"] == "integrated"  # seen on main, landed by the legacy path
    assert status(cfg)["recent_outcomes"] == []  # predictions are not live outcomes
    assert merged_candidates(sandbox) == []  # the integrator wrote nothing to main


def _predictions(db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return list(
            conn.execute(
                "SELECT c.slug, p.prediction FROM predictions p JOIN candidates c ON c.id = p.candidate_id"
            )
        )
    finally:
        conn.close()


def test_fr5_3_and_v4_a_conflict_is_blocked_with_evidence_and_resumes(sandbox: Sandbox, config) -> None:  # type: ignore[no-untyped-def]
    first = push_feature(sandbox, "first", {"shared.txt": "first\n"})
    second = push_feature(sandbox, "second", {"shared.txt": "second\n"})
    emit_cli(config, first)
    emit_cli(config, second)
    run_once(config)
    blocked = json.loads(cli(config, "blocked", "--json").stdout)
    assert [b["slug"] for b in blocked] == ["second"]
    entry = blocked[0]
    assert entry["reason_code"] == "merge_conflict"
    assert entry["conflicted_paths"] == ["shared.txt"]
    assert "<<<<<<<" in entry["hunks"]["shared.txt"] and "second" in entry["hunks"]["shared.txt"]
    assert "finalize_ready" in entry["next_action"]
    follow_up = Path(entry["follow_up"]["path"])
    assert (follow_up / "requirements.md").read_text().count("shared.txt") >= 1
    roadmap = YAML().load((config.todos_dir / "roadmap.yaml").read_text())
    assert {"slug": "second-integration-blocked", "group": "second"}.items() <= dict(roadmap[-1]).items()
    # Nothing changed: resume is refused with the reason.
    refused = cli(config, "resume", "second")
    assert refused.returncode == 1 and "stays blocked" in refused.stderr
    # The worker merges main, resolves, pushes and declares the new sha ready: it supersedes and integrates.
    second.worker.start(second.branch, base=f"origin/{second.branch}")
    git.run_sync(["merge", "--no-edit", "origin/main"], cwd=second.worker.path, check=False)
    fixed = second.worker.commit({"shared.txt": "first\nsecond\n"}, "resolve")
    second.worker.push(second.branch)
    emit_cli(config, type(second)("second", second.branch, fixed, second.worker))
    run_once(config)
    assert merged_candidates(sandbox) == [first.sha, fixed]
    state = YAML().load((follow_up / "state.yaml").read_text())
    assert state["status"] == "resolved"
    assert json.loads(cli(config, "blocked", "--json").stdout) == []
