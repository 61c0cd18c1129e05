"""The pre-receive hook against real pushes: who may move main, in which mode, and what it says."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from authority_helpers import g, make_setup
from conftest import wait_for

from integrator.authority.remote import read_remote_mode, write_remote_mode
from integrator.errors import InvalidInput


def test_cutover_rejects_a_worker_push_of_main_and_says_what_to_do(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    before = s.main_sha()
    s.commit("worker change")

    result = s.push("origin", "main")

    assert result.returncode == 1
    assert "pre-receive hook declined" in result.stderr
    assert "integrator emit finalize_ready --slug" in result.stderr
    assert "feature branch by name only" in result.stderr
    assert "whole push was refused" in result.stderr
    assert s.main_sha() == before


def test_cutover_rejects_the_whole_push_when_main_rides_along(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    sha = s.commit("both")

    result = s.push("origin", "main", f"{sha}:refs/heads/feature-a")

    assert result.returncode == 1
    assert g(s.bare, "rev-parse", "--verify", "--quiet", "refs/heads/feature-a", check=False).stdout == ""


def test_feature_branches_pass_in_both_modes(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    for mode in ("cutover", "shadow"):
        write_remote_mode(s.bare, mode)
        sha = s.commit(f"feature in {mode}")
        result = s.push("origin", f"HEAD:refs/heads/feature-{mode}")
        assert result.returncode == 0, result.stderr
        assert g(s.bare, "rev-parse", f"refs/heads/feature-{mode}").stdout.strip() == sha
        deleted = s.push("origin", f":refs/heads/feature-{mode}")
        assert deleted.returncode == 0, deleted.stderr


def test_the_credential_as_a_push_option_moves_main_in_cutover(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    sha = s.commit("integrated")

    result = s.integrator_push("origin", "main")

    assert result.returncode == 0, result.stderr
    assert s.main_sha() == sha
    assert s.credential() not in result.stderr + result.stdout


@pytest.mark.parametrize("variant", ["wrong", "prefix", "longer", "empty"])
def test_near_miss_credentials_are_rejected(tmp_path: Path, variant: str) -> None:
    s = make_setup(tmp_path, mode="cutover")
    before = s.main_sha()
    s.commit("forged")
    cred = s.credential()
    token = {"wrong": "f" * 64, "prefix": cred[:-1], "longer": cred + "0", "empty": ""}[variant]

    result = s.push("-o", f"integrator-token={token}", "origin", "main")

    assert result.returncode == 1 and "pre-receive hook declined" in result.stderr
    assert s.main_sha() == before
    assert cred not in result.stderr


def test_shadow_lets_legacy_pushes_through(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="shadow")
    new = s.commit("legacy merge")
    feature = s.commit("feature only")

    assert s.push("origin", f"{new}:refs/heads/main").returncode == 0
    assert s.push("origin", "HEAD:refs/heads/feature-x").returncode == 0

    assert s.main_sha() == new
    assert g(s.bare, "rev-parse", "refs/heads/feature-x").stdout.strip() == feature
    # The hook keeps no log of them: the parity report reads main's history, not the hook.
    assert {p.name for p in s.paths.state.iterdir()} <= {"credential", "mode", "spool", "ingest.log"}


@pytest.mark.parametrize("content", [None, "", "garbage\n", "shadowy\n"])
def test_a_missing_or_unreadable_mode_fails_closed(tmp_path: Path, content: str | None) -> None:
    s = make_setup(tmp_path, mode="shadow")
    if content is None:
        s.paths.mode.unlink()
    else:
        s.paths.mode.write_text(content)
    before = s.main_sha()
    s.commit("legacy")

    result = s.push("origin", "main")

    assert result.returncode == 1 and "mode: cutover" in result.stderr
    assert s.main_sha() == before


def test_a_server_side_symbolic_ref_to_main_counts_as_main(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    g(s.bare, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    before = s.main_sha()
    s.commit("sneaky")

    result = s.push("origin", "HEAD:refs/heads/alias")

    assert result.returncode == 1
    assert "refs/heads/alias->refs/heads/main" in result.stderr
    assert s.main_sha() == before


def test_refs_heads_HEAD_is_refused_in_both_modes(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="shadow")
    for mode in ("shadow", "cutover"):
        write_remote_mode(s.bare, mode)
        result = s.push("origin", "HEAD:refs/heads/HEAD")
        assert result.returncode == 1 and "refs/heads/HEAD is never a branch" in result.stderr
        assert g(s.bare, "show-ref", "--verify", "--quiet", "refs/heads/HEAD", check=False).returncode != 0


def test_hooks_need_nothing_from_the_pushers_path(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="shadow")
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    git_path = shutil.which("git")
    assert git_path is not None
    (only_git / "git").symlink_to(git_path)
    s.commit("legacy with a bare PATH")

    result = s.push("origin", "main", env={"PATH": str(only_git)})

    assert result.returncode == 0, result.stderr
    # post-receive found env, nice and the interpreter by absolute path: the push became an event.
    wait_for(lambda: [e for e in s.branch_pushed() if e["branch"] == "main"], what="the push's event")


def test_a_main_deletion_is_refused_in_cutover(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    g(s.bare, "symbolic-ref", "HEAD", "refs/heads/other")  # so git itself would allow the deletion
    before = s.main_sha()
    result = s.push("origin", "--delete", "main")
    assert result.returncode == 1 and "pre-receive hook declined" in result.stderr
    assert s.main_sha() == before


def test_write_remote_mode_is_atomic_and_validated(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="shadow")
    with pytest.raises(InvalidInput):
        write_remote_mode(s.bare, "off")
    assert read_remote_mode(s.bare) == "shadow"
    write_remote_mode(s.bare, "cutover")
    assert read_remote_mode(s.bare) == "cutover"
    assert not [p for p in s.paths.state.iterdir() if p.name.startswith(".mode")]


def test_a_chain_of_symbolic_refs_after_pack_refs_still_counts_as_main(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    sha = s.commit("feature first")
    assert s.push("origin", f"{sha}:refs/heads/packed-feature").returncode == 0
    g(s.bare, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    g(s.bare, "symbolic-ref", "refs/heads/alias2", "refs/heads/alias")
    g(s.bare, "pack-refs", "--all")  # regular refs leave their loose files; symbolic ones stay loose
    before = s.main_sha()
    newer = s.commit("sneaky")

    via_chain = s.push("origin", f"{newer}:refs/heads/alias2")
    packed_feature = s.push("origin", f"{newer}:refs/heads/packed-feature")

    assert via_chain.returncode == 1 and "refs/heads/alias2->refs/heads/main" in via_chain.stderr
    assert s.main_sha() == before
    assert packed_feature.returncode == 0, packed_feature.stderr


@pytest.mark.parametrize(
    "ref", ["refs/tags/main", "refs/heads/Main", "refs/remotes/origin/main", "refs/tags/x/MAIN"]
)
def test_cutover_rejects_refs_that_could_stand_in_for_main(tmp_path: Path, ref: str) -> None:
    s = make_setup(tmp_path, mode="cutover")
    sha = s.commit("lookalike")

    result = s.push("origin", f"{sha}:{ref}")

    assert result.returncode == 1 and "pre-receive hook declined" in result.stderr
    assert ref in result.stderr
    assert g(s.bare, "for-each-ref", ref).stdout == ""
    # The integrator may; and anyone may delete one again (the clean-up).
    assert s.integrator_push("origin", f"{sha}:{ref}").returncode == 0
    assert s.push("origin", f":{ref}").returncode == 0
    assert g(s.bare, "for-each-ref", ref).stdout == ""


def test_cutover_rejects_a_replace_ref_and_lets_a_branch_merely_containing_main_through(
    tmp_path: Path,
) -> None:
    s = make_setup(tmp_path, mode="cutover")
    main = s.main_sha()
    sha = s.commit("replacement")
    replaced = s.push("origin", f"{sha}:refs/replace/{main}")
    assert replaced.returncode == 1 and "pre-receive hook declined" in replaced.stderr
    assert g(s.bare, "for-each-ref", "refs/replace/").stdout == ""
    for name in ("refs/heads/maintenance", "refs/heads/fix-main", "refs/tags/v1"):
        assert s.push("origin", f"{sha}:{name}").returncode == 0, name
