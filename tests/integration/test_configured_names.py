"""Every name a user reads comes from the config: a remote called ``upstream``, a branch ``trunk``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import cli, db_rows, make_config, ok

from integrator import git
from integrator.outbox import Notification
from integrator.sandbox import Sandbox
from teleclaude.adapters.discord_render import render

# "main" as a word: main_sha and integration/main-like identifiers are keys, not names shown as the branch.
LEAKS = re.compile(r"\borigin\b|(?<![\w/-])main(?![\w-])")


def _leaks(text: str) -> list[str]:
    return [text[max(0, m.start() - 40) : m.end() + 40] for m in LEAKS.finditer(text)]


def test_the_blocked_flow_with_upstream_and_trunk_never_says_origin_or_main(tmp_path: Path) -> None:
    sandbox = Sandbox.create(tmp_path / "sb", main_branch="trunk", files={"app.txt": "base\n"})
    git.run_sync(["remote", "rename", "origin", "upstream"], cwd=sandbox.integrator_repo)
    cfg = make_config(tmp_path, sandbox, remote="upstream", main_branch="trunk")

    w = sandbox.worker("alice")
    w.start("feature/clash", base="origin/trunk")
    sha = w.commit({"app.txt": "alice\n"}, "alice's change")
    w.push("feature/clash")
    legacy = sandbox.worker("legacy")
    legacy.start("trunk", base="origin/trunk")
    legacy.commit({"app.txt": "legacy\n"}, "a conflicting change on trunk")
    legacy.push("trunk")

    ok(cfg, "emit", "review_approved", "--slug", "clash", "--sha", sha, "--reviewer", "r", "--round", "1")
    # No --remote: the configured remote, so the candidate can become ready.
    ok(cfg, "emit", "branch_pushed", "--branch", "feature/clash", "--sha", sha)
    ok(
        cfg,
        "emit",
        "finalize_ready",
        "--slug",
        "clash",
        "--branch",
        "feature/clash",
        "--sha",
        sha,
        "--worker",
        "a",
    )
    [pushed] = db_rows(cfg, "SELECT payload FROM events WHERE type = 'branch_pushed'")
    assert json.loads(pushed["payload"])["remote"] == "upstream"
    ok(cfg, "run", "--once")

    [row] = db_rows(cfg, "SELECT next_action FROM blocked_evidence")
    assert "git merge upstream/trunk" in row["next_action"], row["next_action"]
    read: dict[str, str] = {"next_action": row["next_action"]}
    for path in sorted((Path(cfg.todos_dir) / "clash-integration-blocked").iterdir()):
        read[path.name] = path.read_text(encoding="utf-8")
    assert "upstream/trunk" in read["implementation-plan.md"]
    read["status"] = ok(cfg, "status")
    read["resume"] = cli(cfg, "resume", "clash").stdout + cli(cfg, "resume", "clash").stderr
    for n in db_rows(cfg, "SELECT id, kind, payload, created_at FROM outbox ORDER BY id"):
        spec = render(Notification.read(n["id"], n["kind"], json.loads(n["payload"]), n["created_at"]))
        read[f"discord {n['kind']}"] = json.dumps([spec.content, *spec.embeds], ensure_ascii=False)
    assert any(k == "discord integration_blocked" for k in read)
    leaks = {name: found for name, text in read.items() if (found := _leaks(text))}
    assert leaks == {}
