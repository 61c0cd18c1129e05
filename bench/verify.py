"""What the verify sandbox costs per candidate over running the command bare.

One repository of ``--files`` files (500) and one merged commit. In the same run, A-B-B-A:

- ``sandboxed_ms``: ``integrator.verify.run`` as the workflow calls it (export the tree into a plain
  directory, hide the integrator's paths in user+mount+pid namespaces, nested user namespace,
  allowlisted environment, run ``true``, remove the tree);
- ``unisolated_ms``: the same call with ``verify_isolation = "none"`` and the risk accepted (export,
  run, remove: what the sandbox adds is the difference);
- ``floor_ms``: ``git worktree add`` + ``true`` + ``git worktree remove``, the old way, nothing else.

``ratio`` = sandboxed / floor. Medians of ``--repeat`` (20) runs each.

    .venv/bin/python bench/verify.py [--files 500] [--repeat 20]

The last line printed is one JSON object.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import _common

from integrator import git, isolation, verify
from integrator.config import Config, build_config

ENV = _common.IDENTITY


def make_repo(root: Path, files: int) -> tuple[Path, str]:
    repo = root / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for i in range(files):
        sub = repo / f"d{i % 20}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.txt").write_text(f"{i}\n" * 20)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "base"], cwd=repo, check=True, env={**os.environ, **ENV})
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True)
    return repo, sha.stdout.strip()


def config(root: Path, repo: Path, **extra: object) -> Config:
    data = {"repo": str(repo), "verify_command": ["true"], "state_dir": str(root / "state"), **extra}
    return build_config(data, root / "integrator.toml")


async def timed_verify(cfg: Config, sha: str) -> float:
    start = time.perf_counter()
    failure = await verify.run(cfg, sha)
    assert failure is None, failure
    return (time.perf_counter() - start) * 1000


async def timed_floor(repo: Path, sha: str, root: Path) -> float:
    start = time.perf_counter()
    tree = Path(tempfile.mkdtemp(dir=root)) / "tree"
    await git.run(["worktree", "add", "--detach", "--quiet", "--", str(tree), sha], cwd=repo)
    await (await asyncio.create_subprocess_exec("true", cwd=str(tree))).wait()
    await git.run(["worktree", "remove", "--force", "--", str(tree)], cwd=repo)
    return (time.perf_counter() - start) * 1000


async def main(files: int, repeat: int, keep: bool) -> dict[str, object]:
    with _common.temp_root("verify", keep) as root:
        repo, sha = make_repo(root, files)
        sandboxed = config(root, repo)
        bare = config(root, repo, verify_isolation="none", verify_accept_unisolated=True)
        if isolation.unavailable_reason(True) is not None:
            return {"bench": "verify", "skipped": isolation.unavailable_reason(True)}
        times: dict[str, list[float]] = {"sandboxed": [], "unisolated": [], "floor": []}
        for _ in range(repeat):
            for kind in ("sandboxed", "unisolated", "floor", "floor", "unisolated", "sandboxed"):
                if kind == "floor":
                    times[kind].append(await timed_floor(repo, sha, root))
                else:
                    times[kind].append(await timed_verify(sandboxed if kind == "sandboxed" else bare, sha))
        med = {k: round(statistics.median(v), 1) for k, v in times.items()}
        return {
            "bench": "verify",
            "files": files,
            "runs": 2 * repeat,
            "sandboxed_ms": med["sandboxed"],
            "unisolated_ms": med["unisolated"],
            "floor_ms": med["floor"],
            "ratio": round(med["sandboxed"] / med["floor"], 2),
        }


if __name__ == "__main__":
    parser = _common.parser(__doc__)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    _common.emit(asyncio.run(main(args.files, args.repeat, args.keep)))
