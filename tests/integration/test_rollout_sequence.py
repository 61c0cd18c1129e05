"""The README's rollout, verbatim, over a real git daemon: init in shadow, hooks install, remote
serve, authority verify of the served git:// URL, enough parity, cutover."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import INTEGRATOR, cli, ok

from integrator.sandbox import Sandbox

CANDIDATES = 20  # the gate's default minimum of decided candidates


def _g(cwd: Path, *args: str) -> str:
    res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return res.stdout.strip()


def test_the_readme_rollout_passes_over_git_daemon(tmp_path: Path) -> None:
    sandbox = Sandbox.create(tmp_path / "sb")
    config = tmp_path / "integrator.toml"
    init = subprocess.run(
        [INTEGRATOR, "--config", str(config), "init", "--repo", str(sandbox.integrator_repo),
         "--remote", "origin", "--main", "main", "--mode", "shadow"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    ok_ = lambda *a: ok(config, *a)  # noqa: E731
    ok_("hooks", "install", "--remote", str(sandbox.remote))
    serve = subprocess.Popen(
        [INTEGRATOR, "--config", str(config), "remote", "serve", "--remote", str(sandbox.remote)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        url = serve.stdout.readline().strip()
        assert url.startswith("git://"), url
        verify = cli(config, "authority", "verify", "--remote", url)
        assert verify.returncode == 0, verify.stdout + verify.stderr

        # Shadow parity: workers push and announce; the legacy path merges everything by hand.
        w = sandbox.worker("worker")
        shas = []
        for i in range(CANDIDATES):
            w.start(f"feature/c{i}")
            sha = w.commit({f"c{i}.txt": f"{i}\n"}, f"c{i}")
            w.push(f"feature/c{i}")
            shas.append(sha)
            ok_("emit", "review_approved", "--slug", f"c{i}", "--sha", sha, "--reviewer", "r", "--round", "1")
            ok_("emit", "branch_pushed", "--branch", f"feature/c{i}", "--sha", sha)
            ok_(
                "emit",
                "finalize_ready",
                "--slug",
                f"c{i}",
                "--branch",
                f"feature/c{i}",
                "--sha",
                sha,
                "--worker",
                "w",
            )
        ok_("run", "--once")  # predicts
        legacy = sandbox.worker("legacy")
        legacy.start("main")
        for sha in shas:
            _g(legacy.path, "merge", "--no-ff", "-q", "--no-edit", sha)
        legacy.push("main")
        ok_("run", "--once")  # settles

        report = cli(config, "shadow-report")
        assert "cutover gate: PASS" in report.stdout, report.stdout
        cut = cli(config, "cutover")
        assert cut.returncode == 0, cut.stdout + cut.stderr
        assert "cutover" in ok_("status")
    finally:
        serve.terminate()
        serve.wait(timeout=10)
    assert sys.executable
