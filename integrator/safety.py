"""Safety gates: the preconditions that must hold in the integrator's repository before it integrates.

The runtime calls :func:`check_preconditions` after its fetch and before every integration, then
:func:`raise_if_unsafe`. Each violation carries a stable code so that logs, the CLI and the bot can
act on it without parsing prose. The checks only read: nothing here changes the repository.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from integrator import git
from integrator.errors import IntegratorError, InvalidInput

GIT_STATE_UNKNOWN: Final = "git_state_unknown"
CHECKOUT_DIRTY: Final = "checkout_dirty"
LOCAL_MAIN_AHEAD: Final = "local_main_ahead"
REMOTE_MAIN_MISSING: Final = "remote_main_missing"
CODES: Final = (GIT_STATE_UNKNOWN, CHECKOUT_DIRTY, LOCAL_MAIN_AHEAD, REMOTE_MAIN_MISSING)

# Files or directories in a git dir that mean an operation stopped half-way. Merging on top of one would
# either fail confusingly or, worse, commit the other operation's half-resolved state.
_IN_PROGRESS: Final = (
    ("MERGE_HEAD", "a merge"),
    ("rebase-merge", "a rebase"),
    ("rebase-apply", "a rebase or am"),
    ("CHERRY_PICK_HEAD", "a cherry-pick"),
    ("REVERT_HEAD", "a revert"),
    ("BISECT_LOG", "a bisect"),
    # A multi-commit cherry-pick/revert keeps its plan here even after CHERRY_PICK_HEAD is gone.
    ("sequencer/todo", "a cherry-pick or revert sequence"),
)
# Enough paths to recognise the problem; a huge dirty tree must not produce a huge message.
_SHOWN_PATHS: Final = 10


@dataclass(frozen=True)
class SafetyViolation:
    """One failed precondition. ``detail`` holds machine-readable facts (paths, shas, counts)."""

    code: str
    message: str
    detail: Mapping[str, str] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "detail": dict(self.detail)}


class SafetyGateFailed(IntegratorError):
    """At least one precondition failed: integrating now could damage ``main``."""

    code = "safety_gate_failed"

    def __init__(self, violations: Iterable[SafetyViolation]) -> None:
        self.violations = tuple(violations)
        # Distinct codes in first-seen order: several markers can share git_state_unknown.
        self.codes = tuple(dict.fromkeys(v.code for v in self.violations))
        shown = "; ".join(f"{v.code}: {v.message}" for v in self.violations)
        super().__init__(f"safety gate failed ({', '.join(self.codes)}): {shown}")


def raise_if_unsafe(violations: Iterable[SafetyViolation]) -> None:
    """Raise :class:`SafetyGateFailed` when there is any violation; return quietly otherwise."""
    found = tuple(violations)
    if found:
        raise SafetyGateFailed(found)


def _checked_name(what: str, value: str) -> str:
    from integrator.events import check_branch_name

    try:
        return check_branch_name(value)
    except ValueError as err:
        raise InvalidInput(f"{what}: {value!r} {err}") from None


def _unreadable(repo: Path, what: str, result: git.Result) -> SafetyViolation:
    last = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
    return SafetyViolation(
        GIT_STATE_UNKNOWN,
        f"{what} failed in {repo}: {last[0]}",
        {"repo": str(repo), "stderr": result.stderr.strip()},
    )


def _status_paths(porcelain_z: str) -> list[str]:
    """Paths from ``git status --porcelain=v1 -z`` output (each entry is ``XY path``)."""
    fields = porcelain_z.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        # A rename or copy is followed by its source path as a field of its own.
        if "R" in entry[:2] or "C" in entry[:2]:
            i += 1
    return paths


@dataclass(frozen=True)
class _Repo:
    """The repository under check: ``shown`` as the caller named it (messages), ``path`` resolved."""

    shown: Path
    path: Path
    timeout: float

    async def git(self, *args: str) -> git.Result:
        # Stop discovery at the repository itself: a plain directory inside some other checkout must
        # not be mistaken for that checkout.
        env = {"GIT_CEILING_DIRECTORIES": str(self.path.parent)}
        return await git.run(args, cwd=self.path, timeout=self.timeout, check=False, env=env)


async def check_preconditions(
    repo: Path, *, remote: str, main_branch: str, timeout: float
) -> list[SafetyViolation]:
    """Return every violated precondition in ``repo`` (an empty list means safe to integrate).

    ``timeout`` bounds each git command. Run it after fetching: ``remote_main_missing`` and
    ``local_main_ahead`` compare against the remote-tracking ref as it is now. Raises
    :class:`InvalidInput` for a malformed remote or branch name and :class:`GitError` when git
    cannot finish (timeout), which the caller treats like any transient git failure.
    """
    remote = _checked_name("remote", remote)
    main_branch = _checked_name("main_branch", main_branch)
    repo = Path(repo)
    if not repo.is_dir():
        return [SafetyViolation(GIT_STATE_UNKNOWN, f"{repo} is not a directory", {"repo": str(repo)})]
    r = _Repo(repo, repo.resolve(), timeout)
    probe = await r.git("rev-parse", "--absolute-git-dir", "--is-bare-repository")
    if not probe.ok:
        return [_unreadable(repo, "reading the repository", probe)]
    git_dir_text, bare_text = probe.stdout.splitlines()[:2]
    # A bare repository's HEAD only names the default branch; nothing is checked out from it.
    bare = bare_text.strip() == "true"
    violations = [] if bare else await _head_unresolved(r)
    violations += _in_progress(repo, Path(git_dir_text))
    if not bare:
        violations += await _dirty(r)
    return violations + await _main_violations(r, remote, main_branch)


async def _head_unresolved(r: _Repo) -> list[SafetyViolation]:
    if (await r.git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")).ok:
        return []
    message = f"HEAD of {r.shown} does not resolve to a commit (unborn or broken)"
    return [SafetyViolation(GIT_STATE_UNKNOWN, message, {"repo": str(r.shown)})]


def _in_progress(repo: Path, git_dir: Path) -> list[SafetyViolation]:
    return [
        SafetyViolation(
            GIT_STATE_UNKNOWN,
            f"{operation} is in progress in {repo} ({marker} exists)",
            {"repo": str(repo), "marker": marker, "git_dir": str(git_dir)},
        )
        for marker, operation in _IN_PROGRESS
        if (git_dir / marker).exists()
    ]


async def _dirty(r: _Repo) -> list[SafetyViolation]:
    # --no-optional-locks: a read-only check must not take index.lock from a worker's git.
    status = await r.git("--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=no")
    if not status.ok:
        return [_unreadable(r.shown, "git status", status)]
    paths = _status_paths(status.stdout)
    if not paths:
        return []
    return [
        SafetyViolation(
            CHECKOUT_DIRTY,
            f"{r.shown} has uncommitted changes to {len(paths)} tracked path(s): "
            + ", ".join(paths[:_SHOWN_PATHS])
            + (" ..." if len(paths) > _SHOWN_PATHS else ""),
            {"repo": str(r.shown), "count": str(len(paths)), "paths": "\n".join(paths)},
        )
    ]


async def _main_violations(r: _Repo, remote: str, main_branch: str) -> list[SafetyViolation]:
    repo = r.shown
    remote_ref = f"refs/remotes/{remote}/{main_branch}"
    local_ref = f"refs/heads/{main_branch}"
    remote_sha = await r.git("rev-parse", "--verify", "--quiet", f"{remote_ref}^{{commit}}")
    if not remote_sha.ok:
        # Without the remote's main there is nothing to compare the local main against.
        message = f"{remote_ref} does not exist in {repo}: was {remote!r} fetched?"
        return [SafetyViolation(REMOTE_MAIN_MISSING, message, {"repo": str(repo), "ref": remote_ref})]
    local_sha = await r.git("rev-parse", "--verify", "--quiet", f"{local_ref}^{{commit}}")
    if not local_sha.ok:
        return []
    ahead = await r.git("rev-list", "--end-of-options", local_ref, f"^{remote_ref}", "--")
    if not ahead.ok:
        return [_unreadable(repo, "git rev-list", ahead)]
    commits = ahead.stdout.split()
    if not commits:
        return []
    return [
        SafetyViolation(
            LOCAL_MAIN_AHEAD,
            f"local {main_branch} in {repo} has {len(commits)} commit(s) not on {remote_ref}; "
            "the integrator must never push them",
            {
                "repo": str(repo),
                "count": str(len(commits)),
                "local": local_sha.stdout.strip(),
                "remote": remote_sha.stdout.strip(),
                "commits": "\n".join(commits[:_SHOWN_PATHS]),
            },
        )
    ]
