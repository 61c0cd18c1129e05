"""How a candidate's change reached main (shadow parity, docs/cutover.md).

Two questions, both answered with plumbing:

- :func:`by_merge`: the candidate's sha is an ancestor of main. The commit that brought it in is
  judged by its tree: a merge whose tree is not what ``merge-tree`` of its parents gives was edited
  by hand (``landed_with_changes``, with the paths that differ), a merge git could not make alone is
  ``resolved_conflict``, anything else ``clean``.
- :func:`no_op` and :func:`by_patch_id`: the sha is not an ancestor, but the change is on main anyway,
  landed by squash, rebase or cherry-pick. Cheapest first: merging the sha into main changes nothing (the one
  ``merge-tree`` a shadow prediction runs anyway); then patch-id equivalence (``git cherry`` for
  rebased or cherry-picked commits, the whole diff's ``git patch-id --stable`` against main's commits
  since the merge base for a squash).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from integrator import git

# How far back on main a squash is looked for (commits since the merge base).
SQUASH_SCAN_MAX = 2_000


@dataclass(frozen=True)
class Landing:
    actual: str  # clean | resolved_conflict | landed_with_changes | landed_elsewhere
    commit: str | None  # main's commit that carries the change, when known
    paths: tuple[str, ...] = ()  # landed_with_changes: where the landed tree differs from git's merge
    how: str = ""  # landed_elsewhere: no-op merge | rebase or cherry-pick | squash


async def by_merge(repo: Path, sha: str, main: str, *, timeout: float) -> Landing:
    """``sha`` is an ancestor of ``main``: judge the commit that brought it in."""
    path = await git.first_parent_path(repo, sha, main, timeout=timeout)
    if not path:
        return Landing("clean", sha)  # sha is main itself
    first = path[0]
    parents = await git.parents(repo, first, timeout=timeout)
    if (parents and parents[0] == sha) or len(parents) < 2:
        return Landing("clean", first)  # fast-forward or a plain commit on top
    merge = await git.merge_tree(repo, parents[0], parents[1], timeout=timeout)
    if not merge.clean:
        return Landing("resolved_conflict", first)
    landed_tree = await git.tree_of(repo, first, timeout=timeout)
    if merge.tree == landed_tree:
        return Landing("clean", first)
    return Landing("landed_with_changes", first, await _changed(repo, merge.tree, landed_tree, timeout))


async def no_op(repo: Path, main: str, sha: str, *, timeout: float) -> bool:
    """Merging ``sha`` into ``main`` cleanly changes nothing (its change is already there)."""
    merge = await git.merge_tree(repo, main, sha, timeout=timeout)
    return merge.clean and merge.tree == await git.tree_of(repo, main, timeout=timeout)


async def by_patch_id(repo: Path, sha: str, main: str, *, timeout: float) -> Landing | None:
    base_res = await git.run(["merge-base", main, sha], cwd=repo, timeout=timeout, check=False)
    base = base_res.stdout.strip()
    if not base_res.ok or not base or base == sha:
        return None
    cherry = await git.run(["cherry", main, sha, base], cwd=repo, timeout=timeout)
    marks = [line.split()[0] for line in cherry.stdout.splitlines() if line.strip()]
    if marks and all(m == "-" for m in marks):
        return Landing("landed_elsewhere", None, how="rebase or cherry-pick")
    diff = await git.run(["diff", "--no-color", "--no-ext-diff", base, sha, "--"], cwd=repo, timeout=timeout)
    wanted = await _patch_ids(repo, diff.stdout, timeout)
    if not wanted:
        return None
    log = await git.run(
        ["log", "-p", "--no-color", "--no-ext-diff", "--no-merges", f"--max-count={SQUASH_SCAN_MAX}",
         f"{base}..{main}", "--"],
        cwd=repo,
        timeout=timeout,
    )  # fmt: skip
    on_main = await _patch_ids(repo, log.stdout, timeout)
    target = next(iter(wanted.values()))
    for commit, pid in on_main.items():
        if pid == target:
            return Landing("landed_elsewhere", commit, how="squash")
    return None


async def _patch_ids(repo: Path, patches: str, timeout: float) -> dict[str, str]:
    """``{commit: patch id}`` for a ``git log -p`` stream (a bare diff is keyed by the null id)."""
    if not patches.strip():
        return {}
    res = await git.run(["patch-id", "--stable"], cwd=repo, timeout=timeout, input_text=patches)
    found = {}
    for line in res.stdout.splitlines():
        pid, _, commit = line.partition(" ")
        found[commit] = pid
    return found


async def _changed(repo: Path, a: str, b: str, timeout: float) -> tuple[str, ...]:
    res = await git.run(["diff-tree", "-r", "--name-only", "-z", a, b, "--"], cwd=repo, timeout=timeout)
    return tuple(p for p in res.stdout.split("\0") if p)
