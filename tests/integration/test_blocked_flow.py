"""The blocked flow end to end (issue 7, docs/blocked-flow.md), driven through the real ``integrator`` CLI.

Every reason code here comes from a real fault in real repositories: two workers editing the same
lines, a verify command that fails, a remote whose hook refuses main, a branch force-pushed or
deleted after it was declared ready, a corrupt object in the integrator's own clone.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from conftest import Feature, as_json, cli, db_rows, make_config, ok, push_feature
from ruamel.yaml import YAML
from support.killpoints import KILL_AT

from integrator.config import Config
from integrator.events import utcnow
from integrator.sandbox import Sandbox

BASE_LINES = [f"line {n}" for n in range(1, 101)]


def text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def ready_ndjson(slug: str, branch: str, sha: str, *, round_: int = 1) -> str:
    now = utcnow().isoformat()
    events = [
        {
            "type": "review_approved",
            "payload": {
                "slug": slug,
                "sha": sha,
                "reviewer": "rev",
                "review_round": round_,
                "approved_at": now,
            },
        },
        {
            "type": "branch_pushed",
            "payload": {"branch": branch, "sha": sha, "remote": "origin", "pushed_at": now},
        },
        {
            "type": "finalize_ready",
            "payload": {"slug": slug, "branch": branch, "sha": sha, "worker": "w", "ready_at": now},
        },
    ]
    return "".join(json.dumps(e) + "\n" for e in events)


def emit_ready(cfg: Config, slug: str, branch: str, sha: str, *, round_: int = 1) -> dict[str, Any]:
    """The three readiness events in one ``integrator emit --json -`` call."""
    result = cli(
        cfg,
        "emit",
        "--wait",
        "--json",
        "-",
        "--json-output",
        input=ready_ndjson(slug, branch, sha, round_=round_),
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["stored"] == 3, report
    return report


def git(path: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def load_yaml(source: str) -> Any:
    return YAML(typ="safe", pure=True).load(source)


def state_yaml(cfg: Config, slug: str) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(
        (cfg.todos_dir / f"{slug}-integration-blocked" / "state.yaml").read_text()
    )
    return data


def roadmap_entries(cfg: Config) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = load_yaml((cfg.todos_dir / "roadmap.yaml").read_text())
    return data


def blocked_events(cfg: Config) -> list[dict[str, Any]]:
    return [e for e in as_json(cfg, "events", "--limit", "1000") if e["type"] == "integration_blocked"]


def setup(tmp_path: Path, **config: Any) -> tuple[Sandbox, Config]:
    sandbox = Sandbox.create(
        tmp_path / "sb", files={"README.md": "# sandbox\n", "shared.txt": text(BASE_LINES)}
    )
    return sandbox, make_config(tmp_path, sandbox, **config)


def rewrite_shared(who: str) -> dict[str, str]:
    """Every line of shared.txt changed the worker's way: two of these always conflict, in one long hunk."""
    return {"shared.txt": text([f"{who} {n}" for n in range(1, 101)])}


# --- the whole loop -----------------------------------------------------------------------------------


def test_conflict_blocks_with_evidence_then_the_fix_integrates(tmp_path: Path) -> None:
    sandbox, cfg = setup(tmp_path)
    initial = sandbox.main_sha()
    alpha = push_feature(sandbox, "alpha", rewrite_shared("alpha"))
    beta = push_feature(sandbox, "beta", rewrite_shared("beta"))
    emit_ready(cfg, alpha.slug, alpha.branch, alpha.sha)
    emit_ready(cfg, beta.slug, beta.branch, beta.sha)

    ok(cfg, "run", "--once")

    alpha_merge = sandbox.main_sha()
    assert git(sandbox.remote, "rev-parse", f"{alpha_merge}^1", f"{alpha_merge}^2").split() == [
        initial,
        alpha.sha,
    ]
    [entry] = as_json(cfg, "blocked")
    assert (entry["slug"], entry["sha"], entry["reason_code"]) == ("beta", beta.sha, "merge_conflict")
    assert entry["conflicted_paths"] == ["shared.txt"]
    assert entry["blocked_on_main"] == alpha_merge
    assert "Merge main into feature/beta" in entry["next_action"] and "shared.txt" in entry["next_action"]
    assert entry["follow_up"]["status"] == "open" and entry["follow_up"]["blocked_count"] == 1
    summary = entry["evidence"]
    assert (summary["main"], summary["candidate"], summary["base"]) == (alpha_merge, beta.sha, initial)
    assert not any(key.endswith("_full") for key in summary)

    # The event in the log carries the trimmed hunk; the store keeps the full one.
    [event] = blocked_events(cfg)
    payload = event["payload"]
    assert (
        payload["reason_code"] == "merge_conflict" and payload["follow_up_slug"] == "beta-integration-blocked"
    )
    hunk = payload["evidence"]["hunks"]["shared.txt"]
    assert hunk.startswith("@@ lines ") and "<<<<<<< main (" in hunk and ">>>>>>> candidate (" not in hunk
    assert "more lines" in hunk.splitlines()[-1]
    assert "hunks_full" not in payload["evidence"]
    [stored] = db_rows(cfg, "SELECT evidence, next_action FROM blocked_evidence")
    full = json.loads(stored["evidence"])["hunks_full"]["shared.txt"]
    assert "alpha 100" in full and "beta 100" in full and ">>>>>>> candidate (" in full
    assert stored["next_action"] == entry["next_action"]
    # One transaction wrote the event, the transition and the notification.
    [transition] = db_rows(cfg, "SELECT at, reason, fencing FROM transitions WHERE to_status = 'blocked'")
    assert transition["reason"] == "merge_conflict" and transition["fencing"] is not None
    [note] = db_rows(cfg, "SELECT payload, created_at FROM outbox WHERE kind = 'integration_blocked'")
    same_instant = {
        datetime.fromisoformat(t) for t in (note["created_at"], transition["at"], payload["blocked_at"])
    }
    assert len(same_instant) == 1
    assert json.loads(note["payload"])["follow_up_path"] == str(cfg.todos_dir / "beta-integration-blocked")

    folder = cfg.todos_dir / "beta-integration-blocked"
    assert sorted(p.name for p in folder.iterdir()) == [
        "implementation-plan.md",
        "requirements.md",
        "state.yaml",
    ]
    requirements = (folder / "requirements.md").read_text()
    assert (
        "merge_conflict" in requirements and "`shared.txt`" in requirements and "<<<<<<< main" in requirements
    )
    assert "- [ ] " in (folder / "implementation-plan.md").read_text()
    assert state_yaml(cfg, "beta")["status"] == "open"
    assert roadmap_entries(cfg) == [
        {
            "slug": "beta-integration-blocked",
            "group": "beta",
            "description": "Integration of beta is blocked; see beta-integration-blocked/requirements.md",
        }
    ]

    # The worker does what the next action says: merge main, resolve, push, emit for the new sha.
    fixed_sha = resolve_by_merging_main(beta, "beta+alpha")
    emit_ready(cfg, beta.slug, beta.branch, fixed_sha, round_=2)
    ok(cfg, "run", "--once")

    assert as_json(cfg, "blocked") == []
    merges = sandbox.main_log("%H %P")
    assert len(merges) == 3, merges
    beta_merge, parents = merges[0].split(" ", 1)
    assert parents.split() == [alpha_merge, fixed_sha]
    assert merges[1].split()[0] == alpha_merge and merges[2].split()[0] == initial
    status = as_json(cfg, "status")
    by_sha = {c["sha"]: c for c in status["candidates"]}
    assert by_sha[beta.sha]["status"] == "superseded" and by_sha[beta.sha]["superseded_by"] == fixed_sha
    assert by_sha[fixed_sha]["status"] == "integrated"
    assert [
        e["payload"]["sha"] for e in as_json(cfg, "events", "--limit", "1000") if e["type"] == "superseded"
    ] == [beta.sha]
    resolved = state_yaml(cfg, "beta")
    assert (resolved["status"], resolved["merge_sha"], resolved["blocked_count"]) == (
        "resolved",
        beta_merge,
        1,
    )
    assert "## Resolution" in (folder / "requirements.md").read_text()
    [followup] = db_rows(cfg, "SELECT status, blocked_count FROM followups")
    assert (followup["status"], followup["blocked_count"]) == ("resolved", 1)
    assert len(roadmap_entries(cfg)) == 1
    assert sorted(p.name for p in cfg.todos_dir.iterdir()) == ["beta-integration-blocked", "roadmap.yaml"]


def resolve_by_merging_main(feature: Feature, resolution: str) -> str:
    w = feature.worker
    git(w.path, "fetch", "--quiet", "origin")
    merged = subprocess.run(
        ["git", "merge", "--quiet", "origin/main"], cwd=w.path, capture_output=True, text=True
    )
    assert merged.returncode != 0, "the merge was expected to conflict"
    (w.path / "shared.txt").write_text(text([f"{resolution} {n}" for n in range(1, 101)]))
    git(w.path, "add", "shared.txt")
    git(w.path, "commit", "--quiet", "--no-edit")
    w.push(feature.branch)
    return w.head()


# --- each reason code from a real fault -----------------------------------------------------------


def only_blocked(cfg: Config, slug: str) -> dict[str, Any]:
    [entry] = as_json(cfg, "blocked")
    assert entry["slug"] == slug
    return dict(entry)


def stored_evidence(cfg: Config) -> dict[str, Any]:
    [row] = db_rows(cfg, "SELECT evidence FROM blocked_evidence")
    evidence: dict[str, Any] = json.loads(row["evidence"])
    return evidence


VERIFY_SCRIPT = (
    "if [ -e broken.flag ]; then seq 1 500; echo 'verify: broken.flag must not be committed'; exit 3; fi"
)


def test_verify_failed_keeps_the_command_status_and_log_tail(tmp_path: Path) -> None:
    sandbox, cfg = setup(tmp_path, verify_command=["sh", "-c", VERIFY_SCRIPT])
    fine = push_feature(sandbox, "fine", {"fine.txt": "ok\n"})
    flagged = push_feature(sandbox, "flagged", {"broken.flag": "x\n"})
    emit_ready(cfg, fine.slug, fine.branch, fine.sha)
    emit_ready(cfg, flagged.slug, flagged.branch, flagged.sha)
    ok(cfg, "run", "--once")

    assert f"Candidate-Sha: {fine.sha}" in "\n".join(sandbox.main_log("%B")), "the passing candidate landed"
    entry = only_blocked(cfg, "flagged")
    assert entry["reason_code"] == "verify_failed"
    summary = entry["evidence"]
    assert summary["command"] == ["sh", "-c", VERIFY_SCRIPT] and summary["exit_status"] == 3
    assert summary["timed_out"] is False
    tail = summary["log_tail"].splitlines()
    assert tail[-1] == "verify: broken.flag must not be committed" and "earlier lines" in tail[0]
    assert len(tail) <= 81
    assert "exited with status 3" in entry["next_action"] and "emit finalize_ready" in entry["next_action"]
    full = stored_evidence(cfg)["log_full"]
    assert full.startswith("1\n2\n3\n") and full.rstrip().endswith("must not be committed")
    requirements = (cfg.todos_dir / "flagged-integration-blocked" / "requirements.md").read_text()
    assert "broken.flag must not be committed" in requirements and "verify_failed" in requirements
    # Nothing of the failed candidate reached main, and its verify worktree is gone.
    assert f"Candidate-Sha: {flagged.sha}" not in "\n".join(sandbox.main_log("%B"))
    assert list(cfg.state_dir.glob("verify-*")) == []
    assert "verify-" not in git(sandbox.integrator_repo, "worktree", "list")


REJECT_MAIN_HOOK = """#!/bin/sh
while read -r old new ref; do
  if [ "$ref" = refs/heads/main ]; then echo "main is frozen for the release" >&2; exit 1; fi
done
exit 0
"""


def test_push_rejected_by_the_remote_names_the_command_and_stderr(tmp_path: Path) -> None:
    sandbox, cfg = setup(tmp_path)
    feature = push_feature(sandbox, "frozen", {"frozen.txt": "x\n"})
    emit_ready(cfg, feature.slug, feature.branch, feature.sha)
    hook = sandbox.remote / "hooks" / "pre-receive"
    hook.write_text(REJECT_MAIN_HOOK)
    hook.chmod(0o755)
    before = sandbox.main_sha()

    ok(cfg, "run", "--once")

    assert sandbox.main_sha() == before
    entry = only_blocked(cfg, "frozen")
    assert entry["reason_code"] == "push_rejected"
    summary = entry["evidence"]
    assert summary["command"][:2] == ["git", "push"] and "main is frozen for the release" in summary["stderr"]
    assert "retries" not in summary, "a refusal is not main moving"
    assert "refused the integrator's push" in entry["next_action"]
    assert "integrator resume frozen" in entry["next_action"]


def test_branch_force_pushed_after_finalize_is_branch_moved(tmp_path: Path) -> None:
    sandbox, cfg = setup(tmp_path)
    feature = push_feature(sandbox, "rewritten", {"r.txt": "first\n"})
    emit_ready(cfg, feature.slug, feature.branch, feature.sha)
    w = feature.worker
    (w.path / "r.txt").write_text("amended\n")
    git(w.path, "commit", "--quiet", "--amend", "--all", "--no-edit")
    w.push(feature.branch, force=True)
    new_tip = w.head()

    ok(cfg, "run", "--once")

    entry = only_blocked(cfg, "rewritten")
    assert entry["reason_code"] == "branch_moved"
    assert entry["evidence"]["branch_tip"] == new_tip and entry["evidence"]["sha"] == feature.sha
    assert "force-pushed" in entry["evidence"]["reason"]
    assert f"--sha {new_tip}" in entry["next_action"]
    assert len(sandbox.main_log()) == 1


def test_branch_deleted_after_enqueue_is_not_reachable(tmp_path: Path) -> None:
    sandbox, cfg = setup(tmp_path)
    feature = push_feature(sandbox, "vanished", {"v.txt": "x\n"})
    emit_ready(cfg, feature.slug, feature.branch, feature.sha)
    assert [q["slug"] for q in as_json(cfg, "queue")] == ["vanished"]
    git(feature.worker.path, "push", "--quiet", "origin", f":refs/heads/{feature.branch}")

    ok(cfg, "run", "--once")

    entry = only_blocked(cfg, "vanished")
    assert entry["reason_code"] == "not_reachable"
    assert entry["evidence"]["sha"] == feature.sha and entry["evidence"]["branch_tip"] is None
    assert f"git push origin {feature.sha}:refs/heads/{feature.branch}" in entry["next_action"]


def test_a_corrupt_object_in_the_integrators_clone_is_git_error(tmp_path: Path) -> None:
    sandbox, cfg = setup(tmp_path)
    # Both branch from the first commit; main gets the first line changed, the candidate the last:
    # a clean merge, but one that must read the candidate's version of shared.txt.
    top = push_feature(sandbox, "top", {"shared.txt": text(["top", *BASE_LINES[1:]])})
    bottom = push_feature(sandbox, "bottom", {"shared.txt": text([*BASE_LINES[:-1], "bottom"])})
    emit_ready(cfg, top.slug, top.branch, top.sha)
    ok(cfg, "run", "--once")
    emit_ready(cfg, bottom.slug, bottom.branch, bottom.sha)
    blob = git(bottom.worker.path, "rev-parse", f"{bottom.sha}:shared.txt")
    loose = sandbox.integrator_repo / ".git" / "objects" / blob[:2] / blob[2:]
    assert loose.is_file(), "the fetch was expected to store the candidate's blob as a loose object"
    loose.chmod(0o644)
    loose.write_bytes(b"this is not a zlib stream")

    ok(cfg, "run", "--once")

    entry = only_blocked(cfg, "bottom")
    assert entry["reason_code"] == "git_error"
    summary = entry["evidence"]
    assert "merge-tree" in summary["command"] and blob in summary["stderr"]
    assert summary["last_line"] in entry["next_action"]
    assert "integrator resume bottom" in entry["next_action"]
    assert len(sandbox.main_log()) == 2


# --- idempotency and the roadmap -----------------------------------------------------------------

HAND_WRITTEN_ROADMAP = """\
# Rollout roadmap (hand-edited: keep my comments)
- slug: integration-blocked-flow   # the flow itself
  description: >-
    Blocked candidates yield evidence
    and a follow-up.
  after: ~

# a comment between entries
- slug: "quoted-entry"
  group: 'rollout'
  note: trailing spaces stay
""".replace("stay\n", "stay   \n")  # trailing spaces are bytes a re-dump would drop


def conflicting_fix(feature: Feature, who: str) -> str:
    """A new commit on the branch that still conflicts with main (the worker did not merge main)."""
    sha = feature.worker.commit(rewrite_shared(who), f"{who}: retry")
    feature.worker.push(feature.branch)
    return sha


def test_repeated_blocks_and_restarts_keep_one_followup_and_the_roadmap_bytes(tmp_path: Path) -> None:
    # A short lease: the restart after the kill waits for the dead holder's lease to expire.
    sandbox, cfg = setup(tmp_path, lease_ttl_s=1.0, lease_renew_s=0.25)
    cfg.todos_dir.mkdir()
    roadmap = cfg.todos_dir / "roadmap.yaml"
    roadmap.write_text(HAND_WRITTEN_ROADMAP)
    alpha = push_feature(sandbox, "alpha", rewrite_shared("alpha"))
    beta = push_feature(sandbox, "beta", rewrite_shared("beta"))
    emit_ready(cfg, alpha.slug, alpha.branch, alpha.sha)
    emit_ready(cfg, beta.slug, beta.branch, beta.sha)
    ok(cfg, "run", "--once")

    after_first = roadmap.read_text()
    assert after_first.startswith(HAND_WRITTEN_ROADMAP)
    added = load_yaml(after_first[len(HAND_WRITTEN_ROADMAP) :])
    assert added == [
        {
            "slug": "beta-integration-blocked",
            "group": "beta",
            "description": "Integration of beta is blocked; see beta-integration-blocked/requirements.md",
        }
    ]
    assert [e["slug"] for e in load_yaml(after_first)] == [
        "integration-blocked-flow",
        "quoted-entry",
        "beta-integration-blocked",
    ]

    # Second block of the slug, by a new candidate, in a new process.
    second = conflicting_fix(beta, "beta2")
    emit_ready(cfg, beta.slug, beta.branch, second, round_=2)
    ok(cfg, "run", "--once")
    # A restart with nothing to do records nothing.
    ok(cfg, "run", "--once")
    # Third block: the first attempt is killed after its merge check, the restart recovers and blocks it.
    third = conflicting_fix(beta, "beta3")
    emit_ready(cfg, beta.slug, beta.branch, third, round_=3)
    killed = cli(cfg, "run", "--once", probe={KILL_AT: "verified_ready"})
    assert killed.returncode == -9
    assert state_yaml(cfg, "beta")["blocked_count"] == 2
    ok(cfg, "run", "--once")

    entry = only_blocked(cfg, "beta")
    assert entry["sha"] == third and entry["follow_up"]["blocked_count"] == 3
    state = state_yaml(cfg, "beta")
    assert (state["blocked_count"], state["sha"], state["status"]) == (3, third, "open")
    assert state["first_blocked_at"] != state["last_blocked_at"]
    assert roadmap.read_text() == after_first
    assert sorted(p.name for p in cfg.todos_dir.iterdir()) == ["beta-integration-blocked", "roadmap.yaml"]
    assert len(db_rows(cfg, "SELECT 1 FROM followups")) == 1
    assert [e["payload"]["sha"] for e in reversed(blocked_events(cfg))] == [beta.sha, second, third]
    assert len(db_rows(cfg, "SELECT 1 FROM outbox WHERE kind = 'integration_blocked'")) == 3
    # One evidence row per blocked queue item, never more; the superseded ones keep theirs.
    assert len(db_rows(cfg, "SELECT 1 FROM blocked_evidence")) == 3
    statuses = {c["sha"]: c["status"] for c in as_json(cfg, "status")["candidates"]}
    assert (statuses[beta.sha], statuses[second], statuses[third]) == ("superseded", "superseded", "blocked")

    fixed = resolve_by_merging_main(beta, "beta+alpha")
    emit_ready(cfg, beta.slug, beta.branch, fixed, round_=4)
    ok(cfg, "run", "--once")
    state = state_yaml(cfg, "beta")
    assert (state["status"], state["blocked_count"]) == ("resolved", 3)
    assert roadmap.read_text() == after_first
    assert len(sandbox.main_log()) == 3


def test_superseded_candidates_never_get_a_followup(tmp_path: Path) -> None:
    """The worker rewrites the branch and announces the new tip before the integrator gets to the old one."""
    sandbox, cfg = setup(tmp_path)
    feature = push_feature(sandbox, "redo", {"redo.txt": "first\n"})
    emit_ready(cfg, feature.slug, feature.branch, feature.sha)
    w = feature.worker
    (w.path / "redo.txt").write_text("second\n")
    git(w.path, "commit", "--quiet", "--amend", "--all", "--no-edit")
    w.push(feature.branch, force=True)
    emit_ready(cfg, feature.slug, feature.branch, w.head(), round_=2)

    ok(cfg, "run", "--once")

    assert sandbox.main_log("%P")[0].split()[1] == w.head()
    statuses = {c["sha"]: c["status"] for c in as_json(cfg, "status")["candidates"]}
    assert statuses == {feature.sha: "superseded", w.head(): "integrated"}
    assert blocked_events(cfg) == [] and as_json(cfg, "blocked") == []
    assert not cfg.todos_dir.exists(), "no follow-up folder and no roadmap for a superseded candidate"
    assert db_rows(cfg, "SELECT 1 FROM followups") == []
