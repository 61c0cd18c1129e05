"""Resuming a blocked candidate (issue 7, docs/blocked-flow.md), through the real ``integrator`` CLI.

A manual ``integrator resume SLUG`` re-queues the same candidate only when what blocked it changed;
otherwise it refuses with the reason and exit status 1. A resumed candidate goes to the back of
the queue and is taken by the lease holder like any other.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from conftest import Feature, as_json, cli, db_rows, make_config, ok, push_feature

from integrator.config import Config
from integrator.events import utcnow
from integrator.sandbox import Sandbox

BASE_LINES = [f"line {n}" for n in range(1, 21)]


def text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def emit_ready(cfg: Config, feature: Feature, *, sha: str | None = None, round_: int = 1) -> None:
    sha = sha or feature.sha
    now = utcnow().isoformat()
    events = [
        {
            "type": "review_approved",
            "payload": {
                "slug": feature.slug,
                "sha": sha,
                "reviewer": "rev",
                "review_round": round_,
                "approved_at": now,
            },
        },
        {
            "type": "branch_pushed",
            "payload": {"branch": feature.branch, "sha": sha, "remote": "origin", "pushed_at": now},
        },
        {
            "type": "finalize_ready",
            "payload": {
                "slug": feature.slug,
                "branch": feature.branch,
                "sha": sha,
                "worker": "w",
                "ready_at": now,
            },
        },
    ]
    result = cli(cfg, "emit", "--wait", "--json", "-", input="".join(json.dumps(e) + "\n" for e in events))
    assert result.returncode == 0, result.stderr


def refused(cfg: Config, slug: str) -> str:
    result = cli(cfg, "resume", slug)
    assert result.returncode == 1, (
        f"resume {slug} was expected to be refused:\n{result.stdout}{result.stderr}"
    )
    assert result.stdout == ""
    return result.stderr


def blocked_by_slug(cfg: Config) -> dict[str, dict[str, Any]]:
    return {b["slug"]: b for b in as_json(cfg, "blocked")}


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=True).stdout.strip()


def setup(tmp_path: Path, **config: Any) -> tuple[Sandbox, Config]:
    sandbox = Sandbox.create(
        tmp_path / "sb", files={"README.md": "# sandbox\n", "shared.txt": text(BASE_LINES)}
    )
    return sandbox, make_config(tmp_path, sandbox, **config)


def test_conflict_resume_refused_until_main_moves_and_goes_through_the_queue(tmp_path: Path) -> None:
    sandbox, cfg = setup(tmp_path)
    alpha = push_feature(sandbox, "alpha", {"shared.txt": text(["alpha", *BASE_LINES[1:]])})
    beta = push_feature(sandbox, "beta", {"shared.txt": text(["beta", *BASE_LINES[1:]])})
    emit_ready(cfg, alpha)
    emit_ready(cfg, beta)
    ok(cfg, "run", "--once")
    blocked_on = sandbox.main_sha()
    assert blocked_by_slug(cfg)["beta"]["reason_code"] == "merge_conflict"

    message = refused(cfg, "beta")
    assert f"beta stays blocked (merge_conflict): main is still {blocked_on[:10]}" in message
    assert "would block again" in message
    assert blocked_by_slug(cfg)["beta"]["status"] == "blocked" and as_json(cfg, "queue") == []

    # main moves (an unrelated change lands); the conflict is still there, so the resume re-blocks.
    gamma = push_feature(sandbox, "gamma", {"gamma.txt": "g\n"})
    emit_ready(cfg, gamma)
    ok(cfg, "run", "--once")
    moved_to = sandbox.main_sha()
    out = ok(cfg, "resume", "beta")
    assert f"resumed beta {beta.sha[:10]}: main moved from {blocked_on[:10]} to {moved_to[:10]}" in out
    assert "queue position 1" in out
    # Queued, not integrated: only the lease holder's run takes it.
    assert [(q["slug"], q["status"], q["position"]) for q in as_json(cfg, "queue")] == [("beta", "queued", 1)]
    assert "beta" not in blocked_by_slug(cfg) and sandbox.main_sha() == moved_to
    ok(cfg, "run", "--once")
    again = blocked_by_slug(cfg)["beta"]
    assert again["blocked_on_main"] == moved_to and again["evidence"]["main"] == moved_to
    assert again["follow_up"]["blocked_count"] == 2
    [evidence] = db_rows(cfg, "SELECT evidence FROM blocked_evidence WHERE queue_id = ?", (again["id"],))
    assert json.loads(evidence["evidence"])["main"] == moved_to, "a repeat refreshes the evidence row"

    # A change on main undoes alpha's line; another candidate is already waiting when beta resumes.
    undo = push_feature(sandbox, "undo-alpha", {"shared.txt": text(BASE_LINES)})
    emit_ready(cfg, undo)
    ok(cfg, "run", "--once")
    delta = push_feature(sandbox, "delta", {"delta.txt": "d\n"})
    emit_ready(cfg, delta)
    out = ok(cfg, "resume", "beta")
    assert "queue position 2" in out, "a resumed candidate goes to the back of the queue"
    ok(cfg, "run", "--once")

    subjects = sandbox.main_log("%s")
    assert subjects[:2] == ["Merge feature/beta for beta", "Merge feature/delta for delta"]
    assert sandbox.main_log("%P")[0].split()[1] == beta.sha
    assert blocked_by_slug(cfg) == {}
    [followup] = db_rows(cfg, "SELECT status, blocked_count FROM followups WHERE slug = 'beta'")
    assert (followup["status"], followup["blocked_count"]) == ("resolved", 2)
    moves = db_rows(
        cfg,
        "SELECT from_status, to_status, reason, fencing FROM transitions WHERE queue_id = ? ORDER BY id",
        (again["id"],),
    )
    assert [(m["from_status"], m["to_status"]) for m in moves] == [
        (None, "queued"),
        ("queued", "in_progress"),
        ("in_progress", "blocked"),
        ("blocked", "queued"),
        ("queued", "in_progress"),
        ("in_progress", "blocked"),
        ("blocked", "queued"),
        ("queued", "in_progress"),
        ("in_progress", "integrated"),
    ]
    assert all("resumed by " in m["reason"] for m in moves if m["from_status"] == "blocked")
    fencings = [m["fencing"] for m in moves if m["to_status"] == "in_progress"]
    assert None not in fencings and fencings == sorted(set(fencings)), "each attempt under a newer lease"


def test_verify_failure_resumes_only_after_the_verify_command_changed(tmp_path: Path) -> None:
    sandbox, cfg = setup(tmp_path, verify_command=["sh", "-c", "echo checking; exit 3"])
    feature = push_feature(sandbox, "checked", {"checked.txt": "c\n"})
    emit_ready(cfg, feature)
    ok(cfg, "run", "--once")
    entry = blocked_by_slug(cfg)["checked"]
    assert entry["reason_code"] == "verify_failed" and entry["evidence"]["exit_status"] == 3
    assert "checking" in entry["evidence"]["log_tail"]

    assert "the configuration is unchanged" in refused(cfg, "checked")
    before = sandbox.main_sha()
    cfg = make_config(tmp_path, sandbox, verify_command=["sh", "-c", "test -e checked.txt"])
    out = ok(cfg, "resume", "checked")
    assert "the verify command or merge configuration changed" in out
    ok(cfg, "run", "--once")
    assert sandbox.main_log("%P")[0].split() == [before, feature.sha]
    assert blocked_by_slug(cfg) == {}


REJECT_MAIN_HOOK = """#!/bin/sh
while read -r old new ref; do
  if [ "$ref" = refs/heads/main ]; then echo "main is frozen" >&2; exit 1; fi
done
"""


def test_branch_and_remote_blocks_resume_when_the_remote_holds_the_sha_again(tmp_path: Path) -> None:
    sandbox, cfg = setup(tmp_path)
    moved = push_feature(sandbox, "moved", {"moved.txt": "first\n"})
    gone = push_feature(sandbox, "gone", {"gone.txt": "g\n"})
    frozen = push_feature(sandbox, "frozen", {"frozen.txt": "f\n"})
    for feature in (moved, gone, frozen):
        emit_ready(cfg, feature)
    (moved.worker.path / "moved.txt").write_text("amended\n")
    git(moved.worker.path, "commit", "--quiet", "--amend", "--all", "--no-edit")
    moved.worker.push(moved.branch, force=True)
    git(gone.worker.path, "push", "--quiet", "origin", f":refs/heads/{gone.branch}")
    hook = sandbox.remote / "hooks" / "pre-receive"
    hook.write_text(REJECT_MAIN_HOOK)
    hook.chmod(0o755)
    ok(cfg, "run", "--once")
    reasons = {slug: b["reason_code"] for slug, b in blocked_by_slug(cfg).items()}
    assert reasons == {"moved": "branch_moved", "gone": "not_reachable", "frozen": "push_rejected"}

    assert f"moved stays blocked (branch_moved): {moved.branch} is at" in refused(cfg, "moved")
    assert "gone stays blocked (not_reachable)" in refused(cfg, "gone")
    # On the remote, but not on its branch: it would only block again at dequeue.
    git(gone.worker.path, "push", "--quiet", "origin", f"{gone.sha}:refs/heads/backup/gone")
    assert f"git push origin {gone.sha}:refs/heads/{gone.branch}" in refused(cfg, "gone")

    git(moved.worker.path, "push", "--quiet", "--force", "origin", f"{moved.sha}:refs/heads/{moved.branch}")
    git(gone.worker.path, "push", "--quiet", "origin", f"{gone.sha}:refs/heads/{gone.branch}")
    assert f"origin/{moved.branch} holds {moved.sha[:10]} again" in ok(cfg, "resume", "moved")
    assert f"origin/{gone.branch} holds {gone.sha[:10]} again" in ok(cfg, "resume", "gone")
    # A refusal by the remote cannot be observed from here: the operator's word is taken.
    hook.unlink()
    assert "resumed on the operator's word" in ok(cfg, "resume", "frozen")
    ok(cfg, "run", "--once")

    assert blocked_by_slug(cfg) == {}
    landed = {parents.split()[1] for parents in sandbox.main_log("%P")[:3]}
    assert landed == {moved.sha, gone.sha, frozen.sha}


def test_resume_of_a_slug_with_nothing_blocked_is_refused(tmp_path: Path) -> None:
    _, cfg = setup(tmp_path)
    assert "nobody has no blocked candidate to resume" in refused(cfg, "nobody")
