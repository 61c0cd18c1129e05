"""'Already integrated' means ancestry, never tree equality."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import Feature, emit_ready, run_once

from integrator.config import Config
from integrator.sandbox import Sandbox


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


async def test_backport_already_on_main_still_merges_and_the_next_lands(
    sandbox: Sandbox, config: Config, tmp_path: Path
) -> None:
    """main has x→y; S1 is (x→y) on its own; S2 = S1 + (y→z). Queue S1 then S2: both land."""
    seed = sandbox.worker("seed")
    seed.start("main")
    seed.commit({"f.txt": "x\n"}, "x")
    seed.push("main")
    base = sandbox.main_sha()
    seed.commit({"f.txt": "y\n"}, "x to y on main")
    seed.push("main")

    w = sandbox.worker("backporter")
    w.start("feature/s1", base=base)
    s1 = w.commit({"f.txt": "y\n"}, "S1: x to y")
    w.push("feature/s1")
    s2 = w.commit({"f.txt": "z\n"}, "S2: y to z")
    w.push("feature/s2")
    main_before = sandbox.main_sha()
    await emit_ready(config, Feature("s1", "feature/s1", s1, w), Feature("s2", "feature/s2", s2, w))

    await run_once(config)
    landed = sandbox.main_sha()
    first_parents = _git(
        sandbox.remote, "rev-list", "--first-parent", "--parents", f"{main_before}..{landed}"
    )
    # Two merge commits: S1's changes no tree but keeps ancestry, S2's then merges cleanly.
    assert [line.split()[2] for line in reversed(first_parents.splitlines())] == [s1, s2]
    assert _git(sandbox.remote, "merge-base", "--is-ancestor", s2, landed) == ""

    # The same two merges made by plain git in a clone give the same tree.
    plain = tmp_path / "plain"
    _git(tmp_path, "clone", "--quiet", str(sandbox.remote), str(plain))
    _git(plain, "config", "user.name", "p")
    _git(plain, "config", "user.email", "p@x")
    _git(plain, "checkout", "--quiet", "-B", "check", main_before)
    _git(plain, "merge", "--quiet", "--no-ff", "--no-edit", s1)
    _git(plain, "merge", "--quiet", "--no-ff", "--no-edit", s2)
    assert _git(plain, "rev-parse", "HEAD^{tree}") == _git(plain, "rev-parse", f"{landed}^{{tree}}")
    assert (plain / "f.txt").read_text() == "z\n"
