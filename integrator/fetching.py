"""Fetch the remote so that one branch's content cannot stall the others, and is blamed on that branch.

One fetch of every branch is the fast path. When it fails, ``main`` is fetched alone: if that fails
too the remote is unreachable (an infrastructure fault, raised); otherwise the failure belongs to a
branch's content (a blob too big to arrive within the timeout, say), so each changed branch is
fetched on its own and the ones that fail are remembered, with git's own words, at the sha the
remote lists. Later fetches leave those out until their branch moves, so they cost no timeout each
cycle. The workflow blocks a candidate whose sha is one of them; nothing here reads stderr.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integrator import git
from integrator.blocked.evidence import git_failure_evidence
from integrator.errors import GitError


@dataclass(frozen=True)
class Unfetched:
    """A branch whose tip could not be fetched, and why (evidence for blocking its candidate)."""

    sha: str
    evidence: dict[str, Any]


# (repository, remote) -> branch -> Unfetched; per process: a restart re-learns it with one failure.
_KNOWN: dict[tuple[str, str], dict[str, Unfetched]] = {}


async def fetch_remote(repo: Path, remote: str, main_branch: str, *, timeout: float) -> dict[str, Unfetched]:
    """Fetch every branch of ``remote``; returns the branches that could not be fetched."""
    key = (str(repo), remote)
    bad = _KNOWN.get(key, {})
    if bad:
        listed = await git.ls_remote_heads(repo, remote, timeout=timeout)
        bad = {b: u for b, u in bad.items() if listed.get(b) == u.sha}
    try:
        await git.fetch(repo, remote, timeout=timeout, exclude=sorted(bad))
    except GitError:
        await git.fetch_branch(repo, remote, main_branch, timeout=timeout)  # raises: the remote's fault
        bad = {**bad, **await _fetch_each(repo, remote, main_branch, set(bad), timeout=timeout)}
    _KNOWN[key] = bad
    return dict(bad)


async def _fetch_each(
    repo: Path, remote: str, main_branch: str, skip: set[str], *, timeout: float
) -> dict[str, Unfetched]:
    listed = await git.ls_remote_heads(repo, remote, timeout=timeout)
    tracked = await git.remote_tips(repo, remote, timeout=timeout)
    failed = {}
    for branch, sha in sorted(listed.items()):
        if branch == main_branch or branch in skip or tracked.get(branch) == sha:
            continue
        try:
            await git.fetch_branch(repo, remote, branch, timeout=timeout)
        except GitError as err:
            evidence = git_failure_evidence(err.command, err.stderr)
            failed[branch] = Unfetched(sha, {**evidence, "stage": "fetch", "error": str(err)})
    return failed
