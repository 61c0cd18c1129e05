"""The only module that runs git.

Every call goes through :func:`run` (async subprocess, off the event loop, with a timeout) or
:func:`run_sync` (for code already running in a worker thread). User data (shas, branch names,
paths) is always placed after ``--`` or validated before it reaches a command line.
GitPython is used where a repository object is convenient (validating a path at ``init``).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from integrator import gitlock, procs
from integrator.errors import GitError, InvalidInput

if TYPE_CHECKING:
    pass

DEFAULT_TIMEOUT_S = 120.0
# An object id: SHA-1 (40 hex) or SHA-256 (64 hex).
OID_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # Never prompt: a credential prompt would hang an unattended integrator.
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "LC_ALL": "C"})
    if extra:
        env.update(extra)
    return env


def _headline(stderr: str, rc: int) -> str:
    """The line that says what went wrong: git's first ``fatal:``/``error:`` line, else the last one.

    The last line alone is often advice ("and the repository exists.", "remove the file manually to
    continue."), which tells an operator reading ``status`` nothing.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:", "remote: error:", "remote: fatal:")):
            return line
    return lines[-1] if lines else f"exit status {rc}"


def _raise(args: Sequence[str], rc: int, stderr: str) -> GitError:
    shown = " ".join(args[:3])
    last = _headline(stderr, rc)
    return GitError(
        f"git {shown} failed: {last}",
        command=["git", *args],
        stderr=stderr,
    )


async def run(
    args: Sequence[str],
    *,
    cwd: Path,
    timeout: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> Result:
    """Run ``git <args>`` in ``cwd`` without blocking the event loop; a command that writes refs or the
    index waits for the clone's lock first (:mod:`integrator.gitlock`)."""
    if not gitlock.needs_lock(args):
        return await _run(args, cwd=cwd, timeout=timeout, check=check, env=env, input_text=input_text)
    try:
        async with gitlock.held_async(cwd, timeout=timeout):
            return await _run(args, cwd=cwd, timeout=timeout, check=check, env=env, input_text=input_text)
    except gitlock.LockTimeout as err:
        raise GitError(str(err), command=["git", *args], stderr=str(err)) from None


async def _run(
    args: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    check: bool,
    env: Mapping[str, str] | None,
    input_text: str | None,
) -> Result:
    import asyncio  # here: the CLI's read-only commands import this module but never start a loop

    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=str(cwd),
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(env),
        # Its own process group, killed as a whole: git's helpers (ssh, a remote's upload-pack) keep
        # its pipes open, and waiting on them would let a hung remote outlive the timeout. It also keeps
        # a Ctrl-C meant for the integrator (which finishes its phase) from killing a push half-way.
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(input_text.encode() if input_text is not None else None), timeout
        )
    except TimeoutError:
        procs.kill_group(proc.pid)
        await proc.wait()
        raise GitError(
            f"git {' '.join(args[:2])} timed out after {timeout:.0f}s",
            command=["git", *args],
            stderr="timeout",
        ) from None
    except asyncio.CancelledError:
        if proc.returncode is None:
            procs.kill_group(proc.pid)
            await proc.wait()
        raise
    result = Result(
        tuple(args), proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )
    if check and not result.ok:
        raise _raise(args, result.returncode, result.stderr)
    return result


def run_sync(
    args: Sequence[str],
    *,
    cwd: Path,
    timeout: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> Result:
    """The blocking twin of :func:`run`, for worker threads and hook-side helpers."""
    if not gitlock.needs_lock(args):
        return _run_sync(args, cwd=cwd, timeout=timeout, check=check, env=env, input_text=input_text)
    try:
        with gitlock.held(cwd, timeout=timeout):
            return _run_sync(args, cwd=cwd, timeout=timeout, check=check, env=env, input_text=input_text)
    except gitlock.LockTimeout as err:
        raise GitError(str(err), command=["git", *args], stderr=str(err)) from None


def _run_sync(
    args: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    check: bool,
    env: Mapping[str, str] | None,
    input_text: str | None,
) -> Result:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=str(cwd),
            input=input_text,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=_env(env),
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise GitError(
            f"git {' '.join(args[:2])} timed out after {timeout:.0f}s",
            command=["git", *args],
            stderr="timeout",
        ) from None
    result = Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)
    if check and not result.ok:
        raise _raise(args, result.returncode, result.stderr)
    return result


def validate_repository(path: Path, remote: str) -> str:
    """Check ``path`` is a git repository with ``remote``; return the remote's URL."""
    import git as gitpython  # GitPython; imported here so status paths do not pay for it

    try:
        repo = gitpython.Repo(path)
    except (gitpython.exc.NoSuchPathError, gitpython.exc.InvalidGitRepositoryError):
        raise InvalidInput(f"repo: {path} is not a git repository") from None
    try:
        remote_obj = repo.remote(remote)
    except ValueError:
        names = ", ".join(r.name for r in repo.remotes) or "none"
        raise InvalidInput(f"remote: {path} has no remote named {remote!r} (remotes: {names})") from None
    urls = list(remote_obj.urls)
    if not urls:
        raise InvalidInput(f"remote: {remote!r} in {path} has no URL")
    return str(urls[0])


def check_repository(path: Path, remote: str, *, timeout: float = 10.0) -> None:
    """The cheap twin of :func:`validate_repository` for commands that must stay fast (``status``):
    one git call, no GitPython import. Raises InvalidInput naming the problem."""
    if not path.is_dir():
        raise InvalidInput(
            f"repo: {path} does not exist (or is not a directory); fix `repo` in the configuration"
        )
    # --local fails outside a repository; the ceiling keeps git from finding a parent directory's one.
    res = run_sync(
        ["config", "--local", "--get", f"remote.{remote}.url"],
        cwd=path,
        timeout=timeout,
        check=False,
        env={"GIT_CEILING_DIRECTORIES": str(path.resolve().parent)},
    )
    if res.returncode == 1:
        raise InvalidInput(f"remote: {path} has no remote named {remote!r}")
    if not res.ok:
        why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit status {res.returncode}"
        raise InvalidInput(f"repo: {path} is not a git repository ({why})")


# --- the operations the integrator needs, each one git call -------------------------------------


# Each fetch also extends the commit-graph (incrementally): the integrator walks main's history
# several times per candidate (is-ancestor, merge-tree's merge base, the safety gate's rev-list), and
# without generation numbers each walk grows with every merge it has landed.
_FETCH_CONFIG = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "fetch.writeCommitGraph",
    "GIT_CONFIG_VALUE_0": "true",
}


async def fetch(repo: Path, remote: str, *, timeout: float, exclude: Sequence[str] = ()) -> None:
    """One fetch of every branch of ``remote`` (but ``exclude``) into ``refs/remotes/<remote>/``."""
    refspecs = [f"+refs/heads/*:refs/remotes/{remote}/*", *(f"^refs/heads/{b}" for b in exclude)]
    await run(
        ["fetch", "--prune", "--no-tags", "--quiet", "--", remote, *refspecs],
        cwd=repo,
        timeout=timeout,
        env=_FETCH_CONFIG,
    )


async def fetch_branch(repo: Path, remote: str, branch: str, *, timeout: float) -> None:
    """Fetch one branch of ``remote`` into its remote-tracking ref."""
    refspec = f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}"
    await run(
        ["fetch", "--no-tags", "--quiet", "--", remote, refspec], cwd=repo, timeout=timeout, env=_FETCH_CONFIG
    )


async def ls_remote_heads(repo: Path, remote: str, *, timeout: float) -> dict[str, str]:
    """``{branch: sha}`` as the remote has them now, without fetching any object."""
    out = await run(["ls-remote", "--heads", "--", remote], cwd=repo, timeout=timeout)
    heads = {}
    for line in out.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            heads[ref.removeprefix("refs/heads/")] = sha
    return heads


async def refresh_index(repo: Path, *, timeout: float) -> None:
    """Best effort: rewrite the stat data in the integrator's own index.

    A fresh clone's index holds "racily clean" entries, which every later ``git status`` re-hashes
    from disk, and the read-only status of the safety gate (``--no-optional-locks``) never writes the
    refreshed index back: without this, each integration pays for hashing the whole work tree.
    A failure (a bare repository, a lock held elsewhere) changes nothing.
    """
    await run(["update-index", "-q", "--refresh"], cwd=repo, timeout=timeout, check=False)


async def remote_tips(repo: Path, remote: str, *, timeout: float) -> dict[str, str]:
    """``{branch: sha}`` for every remote-tracking branch of ``remote``."""
    prefix = f"refs/remotes/{remote}/"
    out = await run(
        ["for-each-ref", "--format=%(objectname) %(refname)", "--", prefix], cwd=repo, timeout=timeout
    )
    tips = {}
    for line in out.stdout.splitlines():
        sha, _, ref = line.partition(" ")
        name = ref[len(prefix) :]
        if name and name != "HEAD":
            tips[name] = sha
    return tips


async def is_ancestor(repo: Path, ancestor: str, descendant: str, *, timeout: float) -> bool:
    """True when ``ancestor`` is reachable from ``descendant``; errors (missing objects) raise."""
    res = await run(
        ["merge-base", "--is-ancestor", ancestor, descendant], cwd=repo, timeout=timeout, check=False
    )
    if res.returncode in (0, 1):
        return res.returncode == 0
    raise _raise(res.args, res.returncode, res.stderr)


async def unreachable_from(repo: Path, shas: Sequence[str], tip: str, *, timeout: float) -> set[str]:
    """Which of ``shas`` ``tip`` does *not* reach, in one walk instead of one call per sha.

    ``rev-list ^tip sha...`` prints every commit the shas reach and tip does not; a sha is printed
    exactly when tip does not reach it. Raises GitError when an object is missing.
    """
    if not shas:
        return set()
    for sha in (tip, *shas):
        if not OID_RE.fullmatch(sha):
            raise InvalidInput(f"not an object id: {sha!r}")
    res = await run(
        ["rev-list", "--stdin"], cwd=repo, timeout=timeout, input_text="\n".join([f"^{tip}", *shas]) + "\n"
    )
    printed = set(res.stdout.split())
    return {sha for sha in shas if sha in printed}


async def merged_tips(repo: Path, remote: str, main_sha: str, *, timeout: float) -> frozenset[str]:
    """The tips of ``remote``'s branches that are already reachable from ``main_sha``: one walk for all."""
    res = await run(
        ["for-each-ref", "--format=%(objectname)", f"--merged={main_sha}", "--", f"refs/remotes/{remote}/"],
        cwd=repo,
        timeout=timeout,
    )
    return frozenset(res.stdout.split())


async def refs_containing(repo: Path, sha: str, prefix: str, *, timeout: float) -> list[str] | None:
    """Refs under ``prefix`` that contain ``sha``; None when the object is not in the repository."""
    res = await run(
        ["for-each-ref", "--format=%(refname)", f"--contains={sha}", "--", prefix],
        cwd=repo,
        timeout=timeout,
        check=False,
    )
    if res.returncode != 0:
        return None
    return res.stdout.split()


@dataclass(frozen=True)
class MergeResult:
    clean: bool
    tree: str
    conflicted_paths: tuple[str, ...]
    messages: str


async def merge_tree(repo: Path, main_sha: str, sha: str, *, timeout: float) -> MergeResult:
    """Merge in memory (no work tree, no index): the tree, or the conflicted paths."""
    res = await run(
        ["merge-tree", "--write-tree", "--name-only", "-z", main_sha, sha],
        cwd=repo,
        timeout=timeout,
        check=False,
    )
    # With -z: "<tree>\0<path>\0...\0\0<messages>"; paths arrive unquoted.
    head, _, messages = res.stdout.partition("\0\0")
    fields = head.split("\0")
    tree = fields[0].strip()
    if res.returncode not in (0, 1) or not OID_RE.fullmatch(tree):
        # git also exits 1 when it cannot merge at all (no tree written): that is a failure, never a
        # conflict and never "already integrated".
        raise _raise(res.args, res.returncode or 128, res.stderr or res.stdout)
    paths = tuple(dict.fromkeys(p for p in fields[1:] if p)) if res.returncode == 1 else ()
    return MergeResult(res.returncode == 0, tree, paths, messages)


async def tree_of(repo: Path, commit: str, *, timeout: float) -> str:
    res = await run(["rev-parse", "--verify", f"{commit}^{{tree}}"], cwd=repo, timeout=timeout)
    return res.stdout.strip()


async def commit_tree(
    repo: Path,
    tree: str,
    parents: Sequence[str],
    message: str,
    *,
    timeout: float,
    identity: tuple[str, str] = ("teleclaude-integrator", "integrator@localhost"),
    when: str | None = None,
) -> str:
    """Create a commit object; the message arrives on stdin, never on the command line."""
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    env = {
        "GIT_AUTHOR_NAME": identity[0],
        "GIT_AUTHOR_EMAIL": identity[1],
        "GIT_COMMITTER_NAME": identity[0],
        "GIT_COMMITTER_EMAIL": identity[1],
    }
    if when:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when
    res = await run(args, cwd=repo, timeout=timeout, env=env, input_text=message)
    return res.stdout.strip()


@dataclass(frozen=True)
class PushResult:
    ok: bool
    stale: bool  # rejected because the remote's main is not the one we merged on
    stderr: str


async def push_main(
    repo: Path,
    remote: str,
    main_branch: str,
    new_sha: str,
    expected_old: str,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> PushResult:
    """Compare-and-swap push of ``new_sha`` to main: it lands only if main is still ``expected_old``.

    Push options (the integrator's credential) travel in ``env`` as ``push.pushOption`` config, never
    on the command line where other users could read them.
    """
    ref = f"refs/heads/{main_branch}"
    args = ["push", "--porcelain", "--atomic", f"--force-with-lease={ref}:{expected_old}"]
    args += ["--", remote, f"{new_sha}:{ref}"]
    res = await run(args, cwd=repo, timeout=timeout, check=False, env=env)
    if res.ok:
        return PushResult(True, False, res.stderr)
    text = res.stdout + res.stderr
    if "stale info" in text or "fetch first" in text or "non-fast-forward" in text:
        return PushResult(False, True, text)
    if "pre-receive hook declined" in text:
        return PushResult(False, False, text)
    # Anything else (unreachable, a ref lock on the remote, receive-pack dying) is the remote's
    # problem, not the candidate's: the caller counts it as an infrastructure fault.
    raise _raise(res.args, res.returncode, text)


async def empty_tree(repo: Path, *, timeout: float) -> str:
    """Write (if missing) and return the empty tree object."""
    res = await run(["mktree"], cwd=repo, timeout=timeout, input_text="")
    return res.stdout.strip()


async def push_ref(
    repo: Path, remote: str, sha: str, ref: str, *, timeout: float, env: Mapping[str, str] | None = None
) -> Result:
    """Force ``ref`` on ``remote`` to ``sha`` (options in ``env``, as for :func:`push_main`); never raises."""
    return await run(
        ["push", "--porcelain", "--", remote, f"+{sha}:{ref}"],
        cwd=repo,
        timeout=timeout,
        check=False,
        env=env,
    )


async def find_trailer_commit(repo: Path, ref: str, key: str, value: str, *, timeout: float) -> str | None:
    """The newest commit on ``ref`` whose message has the trailer ``key: value``."""
    res = await run(
        ["log", "--format=%H", "-n", "1", "--fixed-strings", f"--grep={key}: {value}", ref, "--"],
        cwd=repo,
        timeout=timeout,
        check=False,
    )
    found = res.stdout.strip()
    return found or None


async def first_parent_path(repo: Path, sha: str, tip: str, *, timeout: float) -> list[str]:
    """Commits on ``tip``'s first-parent chain that descend from ``sha``, oldest first."""
    res = await run(
        ["rev-list", "--first-parent", "--ancestry-path", "--reverse", f"{sha}..{tip}", "--"],
        cwd=repo,
        timeout=timeout,
    )
    return res.stdout.split()


async def parents(repo: Path, commit: str, *, timeout: float) -> list[str]:
    res = await run(["rev-list", "--parents", "-n", "1", commit, "--"], cwd=repo, timeout=timeout)
    return res.stdout.split()[1:]


async def export_tree(repo: Path, commit: str, dest: Path, *, index: Path, timeout: float) -> None:
    """Check ``commit`` out into the plain directory ``dest`` (no ``.git``: it needs nothing of ``repo``)."""
    env = {"GIT_INDEX_FILE": str(index)}
    await run(["read-tree", "--", commit], cwd=repo, timeout=timeout, env=env)
    await run([f"--work-tree={dest}", "checkout-index", "--all"], cwd=repo, timeout=timeout, env=env)
