"""The remote refuses a push of main whose fencing number is below the highest it has seen
(issue 13 item 1): the real sh hook on a real bare remote, pushed to by real git."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from authority_helpers import Setup, make_setup

from integrator import fence, git
from integrator.errors import LeaseLost


def push_main(setup: Setup, sha: str, fencing: int) -> git.Result:
    return setup.push("origin", f"{sha}:refs/heads/main", env=fence.main_push_env(setup.cfg, fencing))


def test_a_lower_fencing_number_is_refused_even_when_compare_and_swap_would_pass(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    first = setup.commit("by holder 5")
    assert push_main(setup, first, 5).returncode == 0
    assert (setup.paths.state / "fence").read_text() == "5\n"
    # Holder 6 takes over and raises the remote's number before doing anything else.
    asyncio.run(fence.raise_remote(setup.cfg, 6))
    assert (setup.paths.state / "fence").read_text() == "6\n"
    # Holder 5 resumes: main has not moved, so only the fence can stop it.
    second = setup.commit("by holder 5, resumed")
    refused = push_main(setup, second, 5)
    assert refused.returncode != 0
    assert (
        fence.REFUSAL in refused.stderr
        and "lower than the highest this remote has seen (6)" in refused.stderr
    )
    assert setup.main_sha() == first
    # The current holder pushes; a raise with an older number is refused too.
    assert push_main(setup, second, 6).returncode == 0
    assert setup.main_sha() == second
    with pytest.raises(LeaseLost):
        asyncio.run(fence.raise_remote(setup.cfg, 4))
    assert (setup.paths.state / "fence").read_text() == "6\n"


def test_the_fence_ref_needs_the_credential_in_every_mode(tmp_path: Path) -> None:
    for mode in ("shadow", "cutover"):
        (tmp_path / mode).mkdir()
        setup = make_setup(tmp_path / mode, mode=mode)
        sha = setup.commit("forged fence")
        res = setup.push("origin", f"{sha}:{fence.FENCE_REF}")
        assert res.returncode != 0 and fence.FENCE_REF in res.stderr
        assert not (setup.paths.state / "fence").exists()


def test_a_fence_lock_left_by_a_dead_hook_is_taken_over(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    lock = setup.paths.state / "fence.lock"
    lock.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (lock / "pid").write_text(f"{dead.pid}\n")
    asyncio.run(fence.raise_remote(setup.cfg, 3))
    assert (setup.paths.state / "fence").read_text() == "3\n"
    assert not lock.exists()


def test_concurrent_raises_keep_the_highest_number(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    clones = []
    for n in range(6):
        clone = tmp_path / f"c{n}"
        shutil.copytree(setup.work, clone)
        clones.append(clone)

    async def all_at_once() -> None:
        jobs = []
        for n, clone in enumerate(clones, start=1):
            cfg = setup.cfg.model_copy(update={"repo": clone})
            jobs.append(fence.raise_remote(cfg, n))
        await asyncio.gather(*jobs, return_exceptions=True)

    asyncio.run(all_at_once())
    assert (setup.paths.state / "fence").read_text() == "6\n"
