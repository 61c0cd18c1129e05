"""Preflight: the configuration is checked against the machine before a command touches any state.

A misconfiguration (a missing repository, a remote typo, an unreadable credential) is the operator's
to fix, not an infrastructure fault: caught here it is one line and exit status 2, with no mode
change, no fault recorded and nothing stored, so the automatic rollback can never fire on it.

Timings and ranges are checked when the configuration is loaded (``integrator.config``); this module
checks what only the machine can answer.
"""

from __future__ import annotations

import re

from integrator import git
from integrator.config import Config
from integrator.errors import ConfigError, GitError

# Asking the remote is one round trip; a remote that needs longer than this to answer at start-up
# is reported as not answering, whatever git_timeout_s allows a fetch of many objects.
REMOTE_ANSWER_TIMEOUT_S = 20.0
_USERINFO = re.compile(r"://[^/@\s]*@")


def local(cfg: Config) -> None:
    """The repository is a clone with a work tree and names the configured remote.

    No git process, no network: ``emit`` runs it on every call and must stay fast. It reads the
    clone's own config file; :func:`full` asks git itself.
    """
    repo = cfg.repo
    if not repo.exists():
        raise ConfigError(f"repo: {repo} does not exist; fix `repo` in {_where(cfg)}")
    if not repo.is_dir():
        raise ConfigError(f"repo: {repo} is not a directory; fix `repo` in {_where(cfg)}")
    git_dir = repo / ".git"
    if not git_dir.is_dir():
        raise ConfigError(f"repo: {repo} is not a git clone with a work tree (no .git directory)")
    try:
        text = (git_dir / "config").read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ConfigError(f"repo: cannot read {git_dir / 'config'} ({err.strerror})") from None
    if not re.search(rf'^\s*\[remote\s+"{re.escape(cfg.remote)}"\s*\]', text, re.MULTILINE):
        raise ConfigError(f"remote: {repo} has no remote named {cfg.remote!r}; fix `remote` in {_where(cfg)}")


def full(cfg: Config) -> None:
    """:func:`local`, git agrees, the remote answers and the credential (when present) is readable."""
    local(cfg)
    repo = cfg.repo
    # The ceiling keeps git from answering for a parent directory's repository.
    ceiling = {"GIT_CEILING_DIRECTORIES": str(repo.resolve().parent)}
    top = git.run_sync(["rev-parse", "--show-toplevel"], cwd=repo, timeout=10, check=False, env=ceiling)
    if not top.ok or top.stdout.strip() != str(repo.resolve()):
        raise ConfigError(f"repo: {repo} is not a git clone with a work tree ({_headline(top.stderr)})")
    url = git.run_sync(["config", "--get", f"remote.{cfg.remote}.url"], cwd=repo, timeout=10, check=False)
    if not url.ok:
        raise ConfigError(f"remote: {cfg.remote!r} has no URL in {repo}; fix `remote` in {_where(cfg)}")
    timeout = min(cfg.git_timeout_s, REMOTE_ANSWER_TIMEOUT_S)
    try:
        git.run_sync(
            ["ls-remote", "--heads", "--", cfg.remote, cfg.main_branch], cwd=cfg.repo, timeout=timeout
        )
    except GitError as err:  # a refusal or the timeout: either way it does not answer
        # Never a URL's user or token.
        why = _USERINFO.sub("://", str(err))
        raise ConfigError(f"remote: {cfg.remote!r} does not answer from {cfg.repo} ({why})") from None
    check_credential(cfg)


def check_credential(cfg: Config) -> None:
    """A credential file that exists must be readable: absent is fine (``hooks install`` creates it)."""
    path = cfg.credential_file
    if not path.exists():
        return
    try:
        path.read_bytes()
    except OSError as err:
        raise ConfigError(
            f"credential_file: cannot read {path} ({err.strerror or type(err).__name__})"
        ) from None


def _headline(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[0] if lines else "git gave no reason"


def _where(cfg: Config) -> str:
    return str(cfg.config_path) if cfg.config_path else "the configuration"
