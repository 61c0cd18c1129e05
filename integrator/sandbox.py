"""A local sandbox: a bare remote, the integrator's clone and worker clones (for ``demo`` and tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from integrator import git


def _git(args: list[str], cwd: Path) -> str:
    return git.run_sync(args, cwd=cwd).stdout.strip()


@dataclass(frozen=True)
class Worker:
    name: str
    path: Path

    def start(self, branch: str, base: str = "origin/main") -> None:
        _git(["fetch", "--quiet", "origin"], self.path)
        _git(["checkout", "--quiet", "-B", branch, base], self.path)

    def commit(self, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        _git(["add", "--", *files], self.path)
        _git(["commit", "--quiet", "-m", message], self.path)
        return self.head()

    def head(self) -> str:
        return _git(["rev-parse", "HEAD"], self.path)

    def push(self, branch: str, *, force: bool = False, remote: str = "origin") -> None:
        args = (
            ["push", "--quiet"] + (["--force"] if force else []) + ["--", remote, f"HEAD:refs/heads/{branch}"]
        )
        _git(args, self.path)


@dataclass(frozen=True)
class Sandbox:
    root: Path
    remote: Path
    integrator_repo: Path
    main_branch: str = "main"

    @classmethod
    def create(cls, root: Path, *, main_branch: str = "main", files: dict[str, str] | None = None) -> Sandbox:
        root.mkdir(parents=True, exist_ok=True)
        remote = root / "remote.git"
        _git(["init", "--quiet", "--bare", f"--initial-branch={main_branch}", str(remote)], root)
        seed = root / "seed"
        _git(["clone", "--quiet", str(remote), str(seed)], root)
        _configure(seed, "seed")
        _git(["checkout", "--quiet", "-B", main_branch], seed)
        for name, text in (files or {"README.md": "# sandbox\n"}).items():
            (seed / name).parent.mkdir(parents=True, exist_ok=True)
            (seed / name).write_text(text, encoding="utf-8")
        _git(["add", "--all"], seed)
        _git(["commit", "--quiet", "-m", "initial commit"], seed)
        _git(["push", "--quiet", "origin", f"HEAD:refs/heads/{main_branch}"], seed)
        integrator_repo = root / "integrator"
        _git(["clone", "--quiet", str(remote), str(integrator_repo)], root)
        _configure(integrator_repo, "integrator")
        return cls(root, remote, integrator_repo, main_branch)

    def worker(self, name: str) -> Worker:
        path = self.root / "workers" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _git(["clone", "--quiet", str(self.remote), str(path)], self.root)
            _configure(path, name)
        return Worker(name, path)

    def main_sha(self) -> str:
        return _git(["rev-parse", f"refs/heads/{self.main_branch}"], self.remote)

    def main_log(self, fmt: str = "%H %P %s") -> list[str]:
        return _git(["log", "--first-parent", f"--format={fmt}", self.main_branch], self.remote).splitlines()


def _configure(path: Path, name: str) -> None:
    _git(["config", "user.name", name], path)
    _git(["config", "user.email", f"{name}@sandbox.local"], path)
    _git(["config", "commit.gpgsign", "false"], path)
