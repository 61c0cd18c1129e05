"""Shared set-up for the push-authority tests: a real bare remote, a worker clone, an integrator config.

Everything is real: git processes, the installed sh hooks, the detached ingestion they start, and
the SQLite database it writes. Waiting is done on conditions with a deadline, never on sleeps.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from integrator import git
from integrator.authority.credential import TOKEN_OPTION, push_options_env, read_credential
from integrator.authority.hooks import install_hooks
from integrator.authority.remote import RemotePaths
from integrator.cli import cli
from integrator.config import Config, build_config, write_config


def credential_push_env(cfg: Config) -> dict[str, str]:
    """A push carrying the integrator's credential as a push option (the product adds its fencing number)."""
    return push_options_env([f"{TOKEN_OPTION}={read_credential(cfg)}"])


# Isolated from the developer's own git configuration (default branch, hooks, signing, identity).
ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Worker",
    "GIT_AUTHOR_EMAIL": "worker@example.invalid",
    "GIT_COMMITTER_NAME": "Worker",
    "GIT_COMMITTER_EMAIL": "worker@example.invalid",
}
ZERO = "0" * 40


def g(cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> git.Result:
    return git.run_sync(args, cwd=cwd, env={**ENV, **(env or {})}, check=check, timeout=60)


@dataclass
class Setup:
    root: Path
    bare: Path
    work: Path
    cfg: Config
    config_path: Path

    @property
    def paths(self) -> RemotePaths:
        return RemotePaths(self.bare)

    def main_sha(self) -> str | None:
        out = g(self.bare, "rev-parse", "--verify", "--quiet", "refs/heads/main", check=False)
        return out.stdout.strip() or None

    def commit(self, message: str) -> str:
        g(self.work, "commit", "-q", "--allow-empty", "-m", message)
        return g(self.work, "rev-parse", "HEAD").stdout.strip()

    def push(self, *args: str, env: dict[str, str] | None = None) -> git.Result:
        return g(self.work, "push", *args, check=False, env=env)

    def integrator_push(self, *args: str) -> git.Result:
        return self.push(*args, env=credential_push_env(self.cfg))

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config_path), *args], catch_exceptions=False)

    def credential(self) -> str:
        return self.cfg.credential_file.read_text().strip()

    def branch_pushed(self) -> list[dict[str, Any]]:
        """The branch_pushed payloads in the integrator's database (empty until it exists)."""
        if not self.cfg.db.exists():
            return []
        conn = sqlite3.connect(self.cfg.db)
        try:
            found = conn.execute(
                "SELECT payload FROM events WHERE type = 'branch_pushed' ORDER BY seq"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()
        return [json.loads(row[0]) for row in found]

    def spool_files(self) -> list[Path]:
        return sorted(self.paths.spool.glob("*.push"))


def make_setup(root: Path, *, mode: str = "cutover", install: bool = True, **config: Any) -> Setup:
    """A bare remote with one commit on main, a worker clone of it, and an integrator config."""
    bare = root / "remote.git"
    g(root, "init", "-q", "--bare", "-b", "main", str(bare))
    work = root / "work"
    g(root, "clone", "-q", str(bare), str(work))
    g(work, "checkout", "-q", "-b", "main")
    g(work, "commit", "-q", "--allow-empty", "-m", "initial")
    g(work, "push", "-q", "origin", "main")
    config_path = root / "integrator.toml"
    cfg = build_config({"repo": str(work), "mode": mode, **config}, config_path)
    write_config(cfg, config_path)
    setup = Setup(root=root, bare=bare, work=work, cfg=cfg, config_path=config_path)
    if install:
        install_hooks(cfg, bare)
    return setup


def snapshot(path: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``path`` with its mode and content, to prove that nothing changed."""
    found = {}
    for item in sorted(path.rglob("*")):
        if item.is_file():
            found[str(item.relative_to(path))] = (item.stat().st_mode, item.read_bytes())
    return found


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
