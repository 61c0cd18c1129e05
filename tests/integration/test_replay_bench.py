"""bench/replay.py on a synthetic history: clean merges, a conflict resolved by hand, a merge edited
by hand, and a backport whose change main already has (CI has no network, so no real repository)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPLAY = Path(__file__).resolve().parents[2] / "bench" / "replay.py"


def _g(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    res = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**env, "PATH": "/usr/bin:/bin"}
    )
    assert res.returncode in (0, 1), res.stderr
    return res.stdout.strip()


def _history(repo: Path) -> None:
    _g(repo.parent, "init", "-q", "-b", "main", str(repo))
    (repo / "f.txt").write_text("x\n")
    (repo / "lib.txt").write_text("a\nb\nc\n")
    _g(repo, "add", "-A")
    _g(repo, "commit", "-qm", "base")

    def branch(name: str, files: dict[str, str], base: str = "main") -> None:
        _g(repo, "checkout", "-q", "-b", name, base)
        for path, text in files.items():
            (repo / path).write_text(text)
        _g(repo, "add", "-A")
        _g(repo, "commit", "-qm", name)
        _g(repo, "checkout", "-q", "main")

    branch("clean", {"c.txt": "c\n"})
    _g(repo, "merge", "-q", "--no-ff", "--no-edit", "clean")
    branch("clash", {"f.txt": "branch\n"})
    (repo / "f.txt").write_text("main\n")
    _g(repo, "commit", "-qam", "main changes f")
    _g(repo, "merge", "-q", "--no-ff", "--no-edit", "clash")  # conflicts
    (repo / "f.txt").write_text("resolved\n")
    _g(repo, "commit", "-qam", "resolved")
    branch("edited", {"e.txt": "e\n"})
    _g(repo, "merge", "-q", "--no-ff", "--no-commit", "edited")
    (repo / "lib.txt").write_text("a\nc\n")  # a manual edit inside the merge
    _g(repo, "add", "-A")
    _g(repo, "commit", "-qm", "merge edited, by hand")


def test_replay_reports_parity_against_ground_truth_and_matches_plain_git(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _history(repo)
    res = subprocess.run(
        [sys.executable, str(REPLAY), "--repo", str(repo), "--merges", "10"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["merges"] == 3
    assert out["ground_truth"] == {"clean": 1, "resolved_conflict": 1, "landed_with_changes": 1}
    assert out["shadow_actuals"] == out["ground_truth"] and out["shadow_parity"] == 3
    assert out["outcomes_equal_plain"] == 3 and out["final_tree_equals_plain"] is True
    assert out["per_candidate_ms"] > 0 and out["floor_ms"] > 0

    bad = subprocess.run(
        [sys.executable, str(REPLAY), "--repo", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "not a git repository" in bad.stderr
