"""Blocked-flow evidence (docs/blocked-flow.md): real conflicting merges in temporary repositories, no mocks."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrator import git
from integrator.blocked import conflicts, remedy
from integrator.blocked.evidence import (
    LOG_FULL_MAX_CHARS,
    LOG_TAIL_CHARS,
    LOG_TAIL_LINES,
    STDERR_TAIL_LINES,
    git_failure_evidence,
    verify_evidence,
)
from integrator.blocked.hunks import extract_hunks
from integrator.blocked.text import REDACTED, tail_text, trim_text
from integrator.errors import GitError, InvalidInput
from integrator.reasons import REASON_CODES

_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}
SHA_RE = re.compile(r"[0-9a-f]{40}")


class Repo:
    """A throwaway repository with a base commit, a ``main`` and a ``feat`` branch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return git.run_sync(list(args), cwd=self.path, env=_ENV).stdout.strip()

    def write(self, files: dict[str, bytes | None]) -> None:
        for name, content in files.items():
            target = self.path / name
            if content is None:
                self.git("rm", "-q", "--", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            self.git("add", "--", name)

    def commit(self, branch: str, files: dict[str, bytes | None], *, new: bool = False) -> str:
        if self.git("symbolic-ref", "--short", "HEAD") != branch or new:
            self.git("switch", "-q", *(["-c", branch] if new else [branch]))
        self.write(files)
        self.git("commit", "-q", "--allow-empty", "-m", f"change on {branch}")
        return self.git("rev-parse", "HEAD")


def conflicting(
    tmp_path: Path,
    base: dict[str, bytes | None],
    main: dict[str, bytes | None],
    feat: dict[str, bytes | None],
) -> tuple[Repo, str, str, str]:
    repo = Repo(tmp_path / "repo")
    base_sha = repo.commit("main", base)
    feat_sha = repo.commit("feat", feat, new=True)
    main_sha = repo.commit("main", main)
    return repo, base_sha, main_sha, feat_sha


def lines(n: int, prefix: str = "line") -> bytes:
    return "".join(f"{prefix} {i}\n" for i in range(1, n + 1)).encode()


# ------------------------------------------------------------------------------- real merge-tree


async def test_content_conflict_gives_paths_hunks_and_the_three_shas(tmp_path: Path) -> None:
    base = lines(20)
    repo, base_sha, main_sha, feat_sha = conflicting(
        tmp_path,
        {"src/app.py": base, "README.md": b"readme\n"},
        {"src/app.py": base.replace(b"line 10\n", b"line 10 from main\n")},
        {"src/app.py": base.replace(b"line 10\n", b"line 10 from feat\n"), "README.md": b"feat readme\n"},
    )
    ev = await conflicts.conflict_evidence(
        repo.path, main_branch="main", main_sha=main_sha, candidate_sha=feat_sha, timeout=30
    )

    assert ev["conflicted_paths"] == ["src/app.py"]
    assert ev["base"] == base_sha
    assert ev["main"] == main_sha
    assert ev["candidate"] == feat_sha
    assert repo.git("cat-file", "-t", ev["tree"]) == "tree"
    hunk = ev["hunks"]["src/app.py"]
    assert hunk.splitlines() == [
        "@@ lines 7-17 @@",
        "line 7",
        "line 8",
        "line 9",
        f"<<<<<<< main ({main_sha[:10]})",
        "line 10 from main",
        "=======",
        "line 10 from feat",
        f">>>>>>> candidate ({feat_sha[:10]})",
        "line 11",
        "line 12",
        "line 13",
    ]
    assert ev["hunks_full"]["src/app.py"] == hunk
    assert ev["kinds"] == {"src/app.py": "content"}
    assert ev["omitted_paths"] == 0
    assert any("Merge conflict in src/app.py" in m for m in ev["messages"])
    assert not any(m.startswith("Auto-merging") for m in ev["messages"])


async def test_separate_conflicts_in_one_file_are_separate_regions(tmp_path: Path) -> None:
    base = lines(40)
    main = base.replace(b"line 5\n", b"main 5\n").replace(b"line 30\n", b"main 30\n")
    feat = base.replace(b"line 5\n", b"feat 5\n").replace(b"line 30\n", b"feat 30\n")
    repo, _, main_sha, feat_sha = conflicting(tmp_path, {"f.txt": base}, {"f.txt": main}, {"f.txt": feat})
    ev = await conflicts.conflict_evidence(
        repo.path, main_branch="main", main_sha=main_sha, candidate_sha=feat_sha, timeout=30
    )
    headers = [ln for ln in ev["hunks"]["f.txt"].splitlines() if ln.startswith("@@")]
    # Numbered as in the file with markers: the first region's markers push the second down by 4.
    assert headers == ["@@ lines 2-12 @@", "@@ lines 31-41 @@"]
    assert "line 20" not in ev["hunks"]["f.txt"]


async def test_binary_conflict_is_described_not_dumped(tmp_path: Path) -> None:
    repo, _, main_sha, feat_sha = conflicting(
        tmp_path,
        {"logo.png": b"\x89PNG\x00base"},
        {"logo.png": b"\x89PNG\x00main\xff"},
        {"logo.png": b"\x89PNG\x00feat\xfe"},
    )
    ev = await conflicts.conflict_evidence(
        repo.path, main_branch="main", main_sha=main_sha, candidate_sha=feat_sha, timeout=30
    )
    assert ev["conflicted_paths"] == ["logo.png"]
    assert ev["kinds"]["logo.png"] == "binary"
    text = ev["hunks"]["logo.png"]
    assert "binary" in text
    assert "\x00" not in text and "PNG" not in text


async def test_deleted_on_main_modified_by_candidate(tmp_path: Path) -> None:
    repo, _, main_sha, feat_sha = conflicting(
        tmp_path,
        {"old.cfg": b"a = 1\n", "keep.txt": b"k\n"},
        {"old.cfg": None},
        {"old.cfg": b"a = 2\n"},
    )
    ev = await conflicts.conflict_evidence(
        repo.path, main_branch="main", main_sha=main_sha, candidate_sha=feat_sha, timeout=30
    )
    assert ev["conflicted_paths"] == ["old.cfg"]
    assert ev["kinds"]["old.cfg"] == "deleted on main, modified by the candidate"
    assert "deleted on main" in ev["hunks"]["old.cfg"]
    assert "CONFLICT (modify/delete)" in ev["hunks"]["old.cfg"]
    assert "<<<<<<<" not in ev["hunks"]["old.cfg"]


async def test_modified_on_main_deleted_by_candidate(tmp_path: Path) -> None:
    repo, _, main_sha, feat_sha = conflicting(
        tmp_path, {"old.cfg": b"a = 1\n"}, {"old.cfg": b"a = 3\n"}, {"old.cfg": None}
    )
    ev = await conflicts.conflict_evidence(
        repo.path, main_branch="main", main_sha=main_sha, candidate_sha=feat_sha, timeout=30
    )
    assert ev["kinds"]["old.cfg"] == "modified on main, deleted by the candidate"
    assert "deleted by the candidate" in ev["hunks"]["old.cfg"]


async def test_modify_delete_wording_names_the_configured_branch(tmp_path: Path) -> None:
    repo, _, main_sha, feat_sha = conflicting(
        tmp_path, {"old.cfg": b"a = 1\n"}, {"old.cfg": None}, {"old.cfg": b"a = 2\n"}
    )
    ev = await conflicts.conflict_evidence(
        repo.path, main_branch="trunk", main_sha=main_sha, candidate_sha=feat_sha, timeout=30
    )
    assert ev["kinds"]["old.cfg"] == "deleted on trunk, modified by the candidate"
    assert "deleted on trunk but modified" in ev["hunks"]["old.cfg"]
    assert "on main" not in ev["hunks"]["old.cfg"]


async def test_awkward_paths_are_keyed_exactly(tmp_path: Path) -> None:
    names = ["with space.txt", "ünïcødé/файл.md", "-leading-dash.txt", "new\nline.txt", 'quote"tab\t.txt']
    repo, _, main_sha, feat_sha = conflicting(
        tmp_path,
        dict.fromkeys(names, b"base\n"),
        dict.fromkeys(names, b"main\n"),
        dict.fromkeys(names, b"feat\n"),
    )
    ev = await conflicts.conflict_evidence(
        repo.path, main_branch="main", main_sha=main_sha, candidate_sha=feat_sha, timeout=30
    )
    assert sorted(ev["conflicted_paths"]) == sorted(names)
    for name in names:
        assert ev["kinds"][name] == "content"
        assert "\nmain\n=======\nfeat\n" in ev["hunks"][name]


async def test_thirty_conflicted_paths_keep_the_list_and_cap_the_hunks(tmp_path: Path) -> None:
    names = [f"pkg/mod_{i:02d}.py" for i in range(30)]
    repo, _, main_sha, feat_sha = conflicting(
        tmp_path,
        dict.fromkeys(names, b"x = 0\n"),
        dict.fromkeys(names, b"x = 1\n"),
        dict.fromkeys(names, b"x = 2\n"),
    )
    ev = await conflicts.conflict_evidence(
        repo.path, main_branch="main", main_sha=main_sha, candidate_sha=feat_sha, timeout=30
    )
    assert ev["conflicted_paths"] == names
    assert list(ev["hunks"]) == names[: conflicts.HUNK_MAX_PATHS]
    assert list(ev["hunks_full"]) == names[: conflicts.HUNK_MAX_PATHS]
    assert ev["omitted_paths"] == 30 - conflicts.HUNK_MAX_PATHS
    assert len(ev["messages"]) == 30


async def test_a_huge_conflict_is_trimmed_and_kept_in_full(tmp_path: Path) -> None:
    base = b"start\nend\n"
    main = b"start\n" + lines(300, "main says a fairly long line of text") + b"end\n"
    feat = b"start\n" + lines(300, "feat") + b"end\n"
    repo, _, main_sha, feat_sha = conflicting(
        tmp_path, {"big.txt": base}, {"big.txt": main}, {"big.txt": feat}
    )
    ev = await conflicts.conflict_evidence(
        repo.path, main_branch="main", main_sha=main_sha, candidate_sha=feat_sha, timeout=30
    )
    trimmed, full = ev["hunks"]["big.txt"], ev["hunks_full"]["big.txt"]
    assert len(trimmed) <= conflicts.HUNK_MAX_CHARS
    assert len(trimmed.split("\n")) <= conflicts.HUNK_MAX_LINES
    assert re.search(r"… \d+ more lines$", trimmed)
    assert "feat 300" in full and "main says a fairly long line of text 300" in full
    assert full.startswith(trimmed.rsplit("\n", 1)[0].removesuffix("…"))


async def test_clean_merge_has_no_conflicts(tmp_path: Path) -> None:
    repo, _, main_sha, feat_sha = conflicting(
        tmp_path, {"a": b"1\n", "b": b"1\n"}, {"a": b"2\n"}, {"b": b"2\n"}
    )
    ev = await conflicts.conflict_evidence(
        repo.path, main_branch="main", main_sha=main_sha, candidate_sha=feat_sha, timeout=30
    )
    assert ev["conflicted_paths"] == [] and ev["hunks"] == {}
    assert SHA_RE.fullmatch(ev["tree"])


async def test_unknown_sha_is_a_git_error_and_a_bad_one_invalid_input(tmp_path: Path) -> None:
    repo, _, main_sha, _ = conflicting(tmp_path, {"a": b"1\n"}, {"a": b"2\n"}, {"a": b"3\n"})
    with pytest.raises(GitError) as err:
        await conflicts.conflict_evidence(
            repo.path, main_branch="main", main_sha=main_sha, candidate_sha="f" * 40, timeout=30
        )
    assert err.value.command[:2] == ["git", "merge-tree"]
    with pytest.raises(InvalidInput, match="candidate_sha"):
        await conflicts.conflict_evidence(
            repo.path, main_branch="main", main_sha=main_sha, candidate_sha="--output=x", timeout=30
        )


async def test_an_exhausted_time_budget_still_gives_the_paths(tmp_path: Path) -> None:
    repo, _, main_sha, feat_sha = conflicting(tmp_path, {"a": b"1\n"}, {"a": b"2\n"}, {"a": b"3\n"})
    ticks = itertools.count(0.0, 100.0)  # every reading of the clock is 100 s after the last
    clock: Callable[[], float] = lambda: next(ticks)  # noqa: E731
    ev = await conflicts.conflict_evidence(
        repo.path, main_branch="main", main_sha=main_sha, candidate_sha=feat_sha, timeout=30, clock=clock
    )
    assert ev["conflicted_paths"] == ["a"]
    assert "time budget" in ev["hunks"]["a"]


# ------------------------------------------------------------------------------ hunk extraction


def test_extract_hunks_ignores_marker_lookalikes_outside_conflicts() -> None:
    text = "Title\n=======\n\nbody\n<<<<<<< ours\nA\n=======\nB\n>>>>>>> theirs\ntail\n"
    out = extract_hunks(text, context=1)
    assert out.splitlines() == [
        "@@ lines 4-10 @@",
        "body",
        "<<<<<<< ours",
        "A",
        "=======",
        "B",
        ">>>>>>> theirs",
        "tail",
    ]
    assert extract_hunks("no conflict\n=======\n") == ""


def test_extract_hunks_nested_markers_end_at_the_matching_length() -> None:
    text = "\n".join(
        [
            "<<<<<<< ours",
            "a",
            "<<<<<<<<< inner",
            "x",
            "=========",
            "y",
            ">>>>>>>>> inner",
            "=======",
            "b",
            ">>>>>>> theirs",
            "after 1",
            "after 2",
            "after 3",
            "after 4",
        ]
    )
    out = extract_hunks(text, context=3)
    assert out.splitlines()[0] == "@@ lines 1-13 @@"
    assert out.splitlines()[-1] == "after 3"


def test_extract_hunks_unterminated_conflict_runs_to_the_end() -> None:
    out = extract_hunks("a\n<<<<<<< ours\nb\nc", context=0)
    assert out.splitlines() == ["@@ lines 2-4 @@", "<<<<<<< ours", "b", "c"]


# ------------------------------------------------------------------------------------- trimming


def test_trim_keeps_short_text_and_marks_what_it_cut() -> None:
    assert trim_text("a\nb", max_lines=5, max_chars=100) == "a\nb"
    out = trim_text("\n".join(str(i) for i in range(100)), max_lines=10, max_chars=1000)
    assert out.split("\n") == [str(i) for i in range(9)] + ["… 91 more lines"]
    tail = tail_text("\n".join(str(i) for i in range(100)), max_lines=10, max_chars=1000)
    assert tail.split("\n") == ["… 91 earlier lines"] + [str(i) for i in range(91, 100)]


def test_trim_cuts_one_enormous_line_but_keeps_its_start() -> None:
    out = trim_text("x" * 10_000, max_lines=60, max_chars=1500)
    assert len(out) <= 1500
    assert out.startswith("x" * 1000) and out.endswith("… 1 more line")


def test_trim_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="too small"):
        trim_text("abc", max_lines=1, max_chars=100)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.characters(codec="utf-8"), max_size=3000)
    | st.lists(st.text(max_size=120), max_size=400).map("\n".join),
    max_lines=st.integers(min_value=2, max_value=100),
    max_chars=st.integers(min_value=40, max_value=3000),
    from_end=st.booleans(),
)
def test_trimmer_never_exceeds_its_limits(text: str, max_lines: int, max_chars: int, from_end: bool) -> None:
    trim = tail_text if from_end else trim_text
    out = trim(text, max_lines=max_lines, max_chars=max_chars)
    assert len(out) <= max_chars
    assert len(out.split("\n")) <= max_lines
    if len(text) <= max_chars and len(text.split("\n")) <= max_lines:
        assert out == text
    else:
        assert re.search(r"… \d+ (more|earlier) lines?", out)


# --------------------------------------------------------------------------- verify and git errors


def test_verify_evidence_keeps_the_tail_and_a_capped_full_log() -> None:
    log = "".join(f"\x1b[32mtest {i} ok\x1b[0m\n" for i in range(5000)) + "FAILED test_x - assert 1 == 2\n"
    ev = verify_evidence(["pytest", "-q", "tests/"], 1, log)
    assert ev["command"] == ["pytest", "-q", "tests/"] and ev["command_line"] == "pytest -q tests/"
    assert ev["exit_status"] == 1 and ev["timed_out"] is False
    assert ev["log_tail"].endswith("FAILED test_x - assert 1 == 2")
    assert ev["log_tail"].startswith("… ")
    assert len(ev["log_tail"]) <= LOG_TAIL_CHARS
    assert len(ev["log_tail"].split("\n")) <= LOG_TAIL_LINES
    assert "\x1b" not in ev["log_tail"] and "\x1b" not in ev["log_full"]
    assert len(ev["log_full"]) <= LOG_FULL_MAX_CHARS + 100
    assert ev["log_full"].endswith("FAILED test_x - assert 1 == 2\n")
    assert ev["log_lines"] == 5001


def test_evidence_never_carries_credentials() -> None:
    token = "s3cr3t-token-value"
    ev = git_failure_evidence(
        [
            "git",
            "push",
            "-o",
            f"integrator-token={token}",
            f"--push-option=x={token}",
            "https://bot:hunter2@example.invalid/repo.git",
            "HEAD:main",
        ],
        f"remote: rejected token {token}\nfatal: unable to access 'https://bot:hunter2@example.invalid/'\n",
        secrets=[token],
    )
    dumped = repr(ev)
    assert token not in dumped and "hunter2" not in dumped
    assert ev["last_line"] == "fatal: unable to access 'https://***@example.invalid/'"
    assert ev["command"][3] == REDACTED
    verify = verify_evidence(["make", "test"], 2, f"export TOKEN={token}\n", secrets=[token])
    assert token not in repr(verify)


def test_git_failure_evidence_tails_long_stderr() -> None:
    stderr = "".join(f"remote: line {i}\n" for i in range(1000)) + "error: failed to push some refs\n"
    ev = git_failure_evidence(["git", "push", "origin", "main"], stderr)
    assert ev["stderr"].endswith("error: failed to push some refs")
    assert len(ev["stderr"].split("\n")) <= STDERR_TAIL_LINES
    assert ev["stderr_full"].endswith("error: failed to push some refs\n")


# ---------------------------------------------------------------------------------- next action


@pytest.mark.parametrize("code", REASON_CODES)
def test_next_action_is_one_specific_sentence_per_code(code: str) -> None:
    evidence = {
        "conflicted_paths": ["a.py", "b.py"],
        "command_line": "pytest -q",
        "exit_status": 1,
        "last_line": "fatal: the remote end hung up",
    }
    text = remedy.next_action(
        code, slug="fix-login", branch="feat/login", evidence=evidence, remote="origin", main_branch="main"
    )
    assert text.endswith(".") and "\n" not in text
    expected = {
        "merge_conflict": [
            "git merge origin/main",
            "`a.py`, `b.py`",
            "git push origin feat/login",
            "integrator emit finalize_ready --slug fix-login --branch feat/login",
        ],
        "verify_failed": ["pytest -q", "exited with status 1", "integrator emit finalize_ready"],
        "push_rejected": ["integrator resume fix-login", "refused"],
        "branch_moved": [
            "integrator emit finalize_ready --slug fix-login --branch feat/login",
            "git rev-parse origin/feat/login",
        ],
        "not_reachable": ["git push origin feat/login", "integrator resume fix-login"],
        "git_error": ["fatal: the remote end hung up", "integrator resume fix-login"],
    }[code]
    for fragment in expected:
        assert fragment in text, (fragment, text)


def test_next_action_uses_evidence_details() -> None:
    moved = remedy.next_action(
        "push_rejected", slug="s", branch="b", evidence={"retries": 3}, remote="origin", main_branch="main"
    )
    assert "kept moving" in moved and "integrator resume s" in moved
    tip = "a" * 40
    moved_on = remedy.next_action(
        "branch_moved",
        slug="s",
        branch="b",
        evidence={"branch_tip": tip},
        remote="origin",
        main_branch="main",
    )
    assert f"--sha {tip}" in moved_on
    sha = "b" * 40
    assert f"git push origin {sha}:refs/heads/b" in remedy.next_action(
        "not_reachable", slug="s", branch="b", evidence={"sha": sha}, remote="origin", main_branch="main"
    )
    many = remedy.next_action(
        "merge_conflict",
        slug="s",
        branch="b",
        evidence={"conflicted_paths": [f"f{i}" for i in range(30)]},
        remote="origin",
        main_branch="main",
    )
    assert "(+25 more)" in many


def test_next_action_quotes_shell_metacharacters_in_branch_names() -> None:
    text = remedy.next_action(
        "merge_conflict", slug="s", branch="feat/$(rm)x;y", evidence={}, remote="origin", main_branch="main"
    )
    assert "git switch 'feat/$(rm)x;y'" in text


def test_unknown_reason_code_is_refused() -> None:
    with pytest.raises(InvalidInput, match="reason_code"):
        remedy.next_action("exploded", slug="s", branch="b", evidence={}, remote="origin", main_branch="main")
    with pytest.raises(InvalidInput, match="reason_code"):
        remedy.plan_steps("exploded", slug="s", branch="b", evidence={}, remote="origin", main_branch="main")


@pytest.mark.parametrize("code", REASON_CODES)
def test_every_plan_ends_by_confirming_the_integration(code: str) -> None:
    steps = remedy.plan_steps(code, slug="s", branch="b", evidence={}, remote="origin", main_branch="main")
    assert len(steps) >= 3
    assert steps[-1].commands == ("integrator status | grep -F -- s",)
    assert all(cmd.strip() for step in steps for cmd in step.commands)


_SPAN_RE = re.compile(r"`([^`]+)`")
_EVIDENCES: list[dict[str, Any]] = [
    {},
    {"conflicted_paths": ["a.py"], "command_line": "pytest -q", "exit_status": 1, "last_line": "fatal: x"},
    {"retries": 3, "branch_tip": "a" * 40, "sha": "b" * 40, "timed_out": True},
]


@pytest.mark.parametrize("evidence", _EVIDENCES)
@pytest.mark.parametrize("code", REASON_CODES)
def test_the_sentence_and_the_checklist_come_from_one_remedy(code: str, evidence: dict[str, Any]) -> None:
    """Every command the next action names is a command of the checklist (or consecutive ones joined
    with ``&&``): the two forms of the fix cannot drift apart."""
    fix = remedy.remedy(code, slug="s", branch="b", evidence=evidence, remote="origin", main_branch="main")
    commands = [cmd for step in fix.steps for cmd in step.commands]
    joined = {
        " && ".join(commands[i:j]) for i in range(len(commands)) for j in range(i + 1, len(commands) + 1)
    }
    spans = [s for s in _SPAN_RE.findall(fix.action) if " " in s]  # commands, not a bare path or name
    assert spans, fix.action
    for span in spans:
        assert span in joined, (span, commands)
    assert fix.action == remedy.next_action(
        code, slug="s", branch="b", evidence=evidence, remote="origin", main_branch="main"
    )
    steps = remedy.plan_steps(
        code, slug="s", branch="b", evidence=evidence, remote="origin", main_branch="main"
    )
    assert steps[:-1] == list(fix.steps)
