"""The safety gates against real repositories: one scenario per violation code, and the clean case."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from integrator import git
from integrator.errors import InvalidInput
from integrator.safety import (
    CHECKOUT_DIRTY,
    CODES,
    GIT_STATE_UNKNOWN,
    LOCAL_MAIN_AHEAD,
    REMOTE_MAIN_MISSING,
    SafetyGateFailed,
    SafetyViolation,
    check_preconditions,
    raise_if_unsafe,
)

# Isolated from the developer's own git configuration (default branch, hooks, signing).
ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_EDITOR": "true",
}


def g(cwd: Path, *args: str, check: bool = True) -> git.Result:
    return git.run_sync(args, cwd=cwd, env=ENV, check=check, timeout=30)


def commit(repo: Path, name: str, text: str, message: str) -> str:
    (repo / name).write_text(text)
    g(repo, "add", "--", name)
    g(repo, "commit", "-q", "-m", message)
    return g(repo, "rev-parse", "HEAD").stdout.strip()


@dataclass
class Setup:
    remote: Path
    work: Path


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    """A bare remote with one commit on main and a clone of it with origin/main fetched."""
    remote = tmp_path / "remote.git"
    g(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    work = tmp_path / "work"
    g(tmp_path, "clone", "-q", str(remote), str(work))
    g(work, "checkout", "-q", "-b", "main")
    commit(work, "a.txt", "base\n", "base")
    g(work, "push", "-q", "origin", "main")
    g(work, "fetch", "-q", "origin")
    return Setup(remote, work)


async def check(repo: Path) -> list[SafetyViolation]:
    return await check_preconditions(repo, remote="origin", main_branch="main", timeout=30)


def codes(violations: list[SafetyViolation]) -> list[str]:
    return [v.code for v in violations]


def conflicting_branch(work: Path) -> None:
    """Make ``other`` change a.txt's only line one way and ``main`` another way."""
    g(work, "checkout", "-q", "-b", "other")
    commit(work, "a.txt", "theirs\n", "theirs")
    g(work, "checkout", "-q", "main")
    commit(work, "a.txt", "ours\n", "ours")


async def test_clean_clone_has_no_violations(setup: Setup) -> None:
    assert await check(setup.work) == []


async def test_untracked_files_do_not_make_the_checkout_dirty(setup: Setup) -> None:
    (setup.work / "scratch.log").write_text("noise\n")
    assert await check(setup.work) == []


async def test_local_main_behind_the_remote_is_safe(setup: Setup, tmp_path: Path) -> None:
    other = tmp_path / "other"
    g(tmp_path, "clone", "-q", str(setup.remote), str(other))
    commit(other, "b.txt", "b\n", "someone else lands")
    g(other, "push", "-q", "origin", "main")
    g(setup.work, "fetch", "-q", "origin")
    assert await check(setup.work) == []


@pytest.mark.parametrize("kind", ["plain directory", "missing path"])
async def test_not_a_repository_is_unknown_state(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "nothing"
    if kind == "plain directory":
        target.mkdir()
    violations = await check(target)
    assert codes(violations) == [GIT_STATE_UNKNOWN]
    assert str(target) in violations[0].message


async def test_directory_inside_a_checkout_is_not_taken_for_that_checkout(setup: Setup) -> None:
    inner = setup.work / "sub"
    inner.mkdir()
    assert codes(await check(inner)) == [GIT_STATE_UNKNOWN]


async def test_unborn_head_is_unknown_state(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    g(tmp_path, "init", "-q", "-b", "main", str(repo))
    violations = await check(repo)
    assert codes(violations) == [GIT_STATE_UNKNOWN, REMOTE_MAIN_MISSING]
    assert "HEAD" in violations[0].message


async def test_merge_in_progress(setup: Setup) -> None:
    conflicting_branch(setup.work)
    assert not g(setup.work, "merge", "other", check=False).ok
    violations = await check(setup.work)
    markers = [v.detail.get("marker") for v in violations if v.code == GIT_STATE_UNKNOWN]
    assert markers == ["MERGE_HEAD"]
    # The conflicted file is an uncommitted change to a tracked path as well.
    assert CHECKOUT_DIRTY in codes(violations)


async def test_cherry_pick_in_progress(setup: Setup) -> None:
    conflicting_branch(setup.work)
    assert not g(setup.work, "cherry-pick", "other", check=False).ok
    markers = [v.detail.get("marker") for v in await check(setup.work) if v.code == GIT_STATE_UNKNOWN]
    assert "CHERRY_PICK_HEAD" in markers


async def test_revert_in_progress(setup: Setup) -> None:
    first = commit(setup.work, "a.txt", "one\n", "one")
    commit(setup.work, "a.txt", "two\n", "two")
    assert not g(setup.work, "revert", "--no-edit", first, check=False).ok
    markers = [v.detail.get("marker") for v in await check(setup.work) if v.code == GIT_STATE_UNKNOWN]
    assert "REVERT_HEAD" in markers


@pytest.mark.parametrize(("backend", "marker"), [("--merge", "rebase-merge"), ("--apply", "rebase-apply")])
async def test_rebase_in_progress(setup: Setup, backend: str, marker: str) -> None:
    conflicting_branch(setup.work)
    g(setup.work, "checkout", "-q", "other")
    assert not g(setup.work, "rebase", backend, "main", check=False).ok
    markers = [v.detail.get("marker") for v in await check(setup.work) if v.code == GIT_STATE_UNKNOWN]
    assert marker in markers


async def test_bisect_in_progress_on_a_clean_tree(setup: Setup) -> None:
    g(setup.work, "bisect", "start")
    violations = await check(setup.work)
    assert codes(violations) == [GIT_STATE_UNKNOWN]
    assert violations[0].detail["marker"] == "BISECT_LOG"
    g(setup.work, "bisect", "reset")
    assert await check(setup.work) == []


async def test_operation_in_a_linked_worktree_is_seen_there_only(setup: Setup, tmp_path: Path) -> None:
    conflicting_branch(setup.work)
    wt = tmp_path / "wt"
    g(setup.work, "worktree", "add", "-q", "-b", "side", str(wt), "main")
    assert not g(wt, "merge", "other", check=False).ok
    assert GIT_STATE_UNKNOWN in codes(await check(wt))
    # The main checkout's own state is untouched (only its main is ahead: it has the "ours" commit).
    assert codes(await check(setup.work)) == [LOCAL_MAIN_AHEAD]


@pytest.mark.parametrize("how", ["modified", "staged", "deleted"])
async def test_uncommitted_tracked_change_is_dirty(setup: Setup, how: str) -> None:
    if how == "deleted":
        (setup.work / "a.txt").unlink()
    else:
        (setup.work / "a.txt").write_text("changed\n")
    if how == "staged":
        g(setup.work, "add", "a.txt")
    violations = await check(setup.work)
    assert codes(violations) == [CHECKOUT_DIRTY]
    assert violations[0].detail["paths"] == "a.txt"


async def test_staged_rename_reports_the_new_path_once(setup: Setup) -> None:
    g(setup.work, "mv", "a.txt", "renamed file.txt")
    violations = await check(setup.work)
    assert codes(violations) == [CHECKOUT_DIRTY]
    assert violations[0].detail["paths"] == "renamed file.txt"
    assert violations[0].detail["count"] == "1"


async def test_bare_repository_skips_the_checkout_check(setup: Setup, tmp_path: Path) -> None:
    bare = tmp_path / "mirror.git"
    g(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    g(bare, "remote", "add", "origin", str(setup.remote))
    g(bare, "fetch", "-q", "origin")
    assert await check(bare) == []


async def test_local_commit_on_main_is_ahead(setup: Setup) -> None:
    sha = commit(setup.work, "b.txt", "b\n", "committed to main by hand")
    violations = await check(setup.work)
    assert codes(violations) == [LOCAL_MAIN_AHEAD]
    assert violations[0].detail["count"] == "1"
    assert violations[0].detail["commits"] == sha


async def test_local_main_is_checked_even_when_another_branch_is_checked_out(setup: Setup) -> None:
    commit(setup.work, "b.txt", "b\n", "on main")
    g(setup.work, "checkout", "-q", "-b", "feature", "origin/main")
    assert codes(await check(setup.work)) == [LOCAL_MAIN_AHEAD]


async def test_no_local_main_is_fine(setup: Setup) -> None:
    g(setup.work, "checkout", "-q", "--detach", "origin/main")
    g(setup.work, "branch", "-q", "-D", "main")
    assert await check(setup.work) == []


async def test_missing_remote_tracking_ref(setup: Setup) -> None:
    g(setup.work, "update-ref", "-d", "refs/remotes/origin/main")
    violations = await check(setup.work)
    assert codes(violations) == [REMOTE_MAIN_MISSING]
    assert violations[0].detail["ref"] == "refs/remotes/origin/main"


async def test_unknown_remote_name_means_remote_main_missing(setup: Setup) -> None:
    violations = await check_preconditions(setup.work, remote="upstream", main_branch="main", timeout=30)
    assert codes(violations) == [REMOTE_MAIN_MISSING]


async def test_several_violations_are_all_reported(setup: Setup) -> None:
    commit(setup.work, "b.txt", "b\n", "local")
    (setup.work / "a.txt").write_text("dirty\n")
    g(setup.work, "bisect", "start")
    found = sorted(codes(await check(setup.work)))
    assert found == sorted([GIT_STATE_UNKNOWN, CHECKOUT_DIRTY, LOCAL_MAIN_AHEAD])


@pytest.mark.parametrize(("remote", "main"), [("-x", "main"), ("origin", "../main"), ("origin", "")])
async def test_malformed_names_are_refused(setup: Setup, remote: str, main: str) -> None:
    with pytest.raises(InvalidInput):
        await check_preconditions(setup.work, remote=remote, main_branch=main, timeout=30)


def test_raise_if_unsafe() -> None:
    raise_if_unsafe([])
    violations = [
        SafetyViolation(GIT_STATE_UNKNOWN, "a merge is in progress", {"marker": "MERGE_HEAD"}),
        SafetyViolation(GIT_STATE_UNKNOWN, "a bisect is in progress", {"marker": "BISECT_LOG"}),
        SafetyViolation(CHECKOUT_DIRTY, "dirty", {"paths": "a.txt"}),
    ]
    with pytest.raises(SafetyGateFailed) as info:
        raise_if_unsafe(violations)
    err = info.value
    assert err.code == "safety_gate_failed"
    assert err.codes == (GIT_STATE_UNKNOWN, CHECKOUT_DIRTY)
    assert err.violations == tuple(violations)
    assert "git_state_unknown" in err.message and "checkout_dirty" in err.message


def test_codes_are_stable_strings() -> None:
    # Other components (runtime, bot, dashboards) match on these exact values.
    assert CODES == ("git_state_unknown", "checkout_dirty", "local_main_ahead", "remote_main_missing")
    violation = SafetyViolation(CHECKOUT_DIRTY, "m", {"k": "v"})
    assert violation.to_dict() == {"code": "checkout_dirty", "message": "m", "detail": {"k": "v"}}
    assert hash(violation) == hash(SafetyViolation(CHECKOUT_DIRTY, "m", {"other": "detail"}))
