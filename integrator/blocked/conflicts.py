"""Evidence for a ``merge_conflict``: the conflicted paths and their hunks, read from the tree
``git merge-tree`` wrote, so a person can resolve the conflict without rerunning the merge.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integrator import git
from integrator.blocked.hunks import extract_hunks, relabel
from integrator.blocked.text import cap_full, more, trim_text
from integrator.errors import GitError, InvalidInput
from integrator.events import check_sha

# Sizes chosen so one path's hunks fit a Discord embed field set (1,024 chars per field, 6,000 per
# embed) with room for the heading, and a todo stays readable.
HUNK_MAX_LINES = 60
HUNK_MAX_CHARS = 1_500
HUNK_MAX_PATHS = 20
HUNK_FULL_MAX_CHARS = 32_000
# A conflicted blob larger than this is described, not read: binary assets can be huge.
BLOB_READ_MAX_BYTES = 1_000_000
MESSAGES_MAX = 100

_ENTRY_RE = re.compile(r"(?P<mode>[0-7]{6}) (?P<oid>[0-9a-f]{40,64}) (?P<stage>[123])\t(?P<path>.*)", re.S)
_BATCH_OK_RE = re.compile(r"[0-9a-f]{40,64} (\w+) (\d+)")


@dataclass(frozen=True)
class _Message:
    paths: tuple[str, ...]
    kind: str
    text: str


@dataclass(frozen=True)
class _MergeTree:
    tree: str
    stages: dict[str, frozenset[int]]
    messages: tuple[_Message, ...]


def _parse_merge_tree(stdout: str) -> _MergeTree:
    """Parse ``merge-tree --write-tree -z --messages``: tree NUL, stage entries, NUL, messages."""
    fields = stdout.split("\0")
    tree = fields[0].strip()
    stages: dict[str, set[int]] = {}
    i = 1
    while i < len(fields) and fields[i] != "":
        match = _ENTRY_RE.fullmatch(fields[i])
        if match is None:
            raise ValueError(f"unexpected merge-tree entry {fields[i][:80]!r}")
        stages.setdefault(match["path"], set()).add(int(match["stage"]))
        i += 1
    i += 1
    messages: list[_Message] = []
    while i < len(fields) and fields[i] != "":
        count = int(fields[i])
        paths = tuple(fields[i + 1 : i + 1 + count])
        kind = fields[i + 1 + count]
        text = fields[i + 2 + count].strip()
        messages.append(_Message(paths, kind, text))
        i += count + 3
    return _MergeTree(tree, {p: frozenset(s) for p, s in stages.items()}, tuple(messages))


def _conflict_kind(path: str, stages: frozenset[int], messages: Sequence[_Message], main_branch: str) -> str:
    kinds = [m.kind for m in messages if path in m.paths and m.kind.startswith("CONFLICT")]
    if "CONFLICT (binary)" in kinds:
        return "binary"
    if stages == {1, 3}:
        return f"deleted on {main_branch}, modified by the candidate"
    if stages == {1, 2}:
        return f"modified on {main_branch}, deleted by the candidate"
    if stages == {2, 3}:
        return "added on both sides"
    for kind in kinds:
        if kind != "CONFLICT (contents)":
            return kind.removeprefix("CONFLICT (").removesuffix(")")
    return "content"


def _describe(path: str, kind: str, messages: Sequence[_Message], note: str, main_branch: str) -> str:
    """Words for a conflict without markers to show: what happened, and git's own messages."""
    said = {
        "binary": "binary file changed on both sides; git cannot merge binary content, "
        "so pick one version (or regenerate the file) and commit it",
        f"deleted on {main_branch}, modified by the candidate": f"deleted on {main_branch} but modified "
        "by the candidate; decide whether the file should exist and reapply or drop the candidate's change",
        f"modified on {main_branch}, deleted by the candidate": f"modified on {main_branch} but deleted "
        f"by the candidate; decide whether {main_branch}'s change still needs the file",
    }.get(kind, f"{kind} conflict")
    lines = [f"({said})"]
    if note:
        lines.append(f"({note})")
    lines.extend(f"git: {m.text}" for m in messages if path in m.paths and m.kind.startswith("CONFLICT"))
    return "\n".join(lines)


class _Deadline:
    """One time budget across the several git calls evidence needs."""

    def __init__(self, timeout: float, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._end = clock() + timeout

    def left(self) -> float:
        return self._end - self._clock()


async def _blob_infos(
    repo: Path, tree: str, paths: Sequence[str], timeout: float
) -> dict[str, tuple[str, str, int] | None]:
    """(oid, type, size) of ``<tree>:<path>`` for each path, in one ``cat-file --batch-check -z``."""
    names = [f"{tree}:{p}" for p in paths]
    res = await git.run(
        ["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)", "-z"],
        cwd=repo,
        timeout=timeout,
        input_text="".join(f"{n}\0" for n in names),
    )
    out = res.stdout
    infos: dict[str, tuple[str, str, int] | None] = {}
    pos = 0
    for path, name in zip(paths, names, strict=True):
        # A missing object echoes the name we sent, which may itself contain newlines.
        for suffix in (" missing\n", " ambiguous\n"):
            if out.startswith(name + suffix, pos):
                infos[path] = None
                pos += len(name) + len(suffix)
                break
        else:
            nl = out.find("\n", pos)
            line = out[pos : nl if nl >= 0 else len(out)]
            pos = len(out) if nl < 0 else nl + 1
            match = _BATCH_OK_RE.fullmatch(line)
            infos[path] = (line.split(" ", 1)[0], match.group(1), int(match.group(2))) if match else None
    return infos


async def conflict_evidence(
    repo: Path,
    *,
    main_sha: str,
    candidate_sha: str,
    main_branch: str,
    timeout: float,
    max_paths: int = HUNK_MAX_PATHS,
    clock: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Evidence for a ``merge_conflict``: re-run the merge in plumbing and read the conflicts.

    ``timeout`` bounds all the git calls together. Raises :class:`GitError` when the merge itself
    cannot run (unknown sha, unrelated histories); a clean merge returns empty path lists.
    """
    for name, value in (("main_sha", main_sha), ("candidate_sha", candidate_sha)):
        try:
            check_sha(value)
        except ValueError as err:
            raise InvalidInput(f"{name}: {err}") from None
    deadline = _Deadline(timeout, clock or asyncio.get_running_loop().time)

    args = ["merge-tree", "--write-tree", "-z", "--messages", main_sha, candidate_sha]
    merged = await git.run(args, cwd=repo, timeout=timeout, check=False)
    # Exit status 1 means "conflicts" only when a tree was written: git 2.39 also exits 1 for an
    # object it cannot merge ("not something we can merge"), with nothing on stdout.
    first = merged.stdout.split("\0", 1)[0].strip()
    if merged.returncode not in (0, 1) or not git.OID_RE.fullmatch(first):
        last = merged.stderr.strip().splitlines()[-1] if merged.stderr.strip() else "no stderr"
        raise GitError(f"git merge-tree failed: {last}", command=["git", *args], stderr=merged.stderr)
    parsed = _parse_merge_tree(merged.stdout)
    paths = list(parsed.stages)
    # Two 40-hex shas on every marker and message are hard to read; name the sides instead.
    labels = {
        main_sha: f"{main_branch} ({main_sha[:10]})",
        candidate_sha: f"candidate ({candidate_sha[:10]})",
    }
    messages = tuple(_Message(m.paths, m.kind, relabel(m.text, labels)) for m in parsed.messages)

    try:
        base_res = await git.run(
            ["merge-base", "--all", main_sha, candidate_sha],
            cwd=repo,
            timeout=max(deadline.left(), 1.0),
            check=False,
        )
        bases = base_res.stdout.split() if base_res.ok else []
    except GitError:
        bases = []  # the conflict itself is known; a missing base only makes the evidence thinner

    hunks: dict[str, str] = {}
    hunks_full: dict[str, str] = {}
    kinds: dict[str, str] = {}
    shown = paths[:max_paths]
    infos: dict[str, tuple[str, str, int] | None] = {}
    unread = ""
    if shown and deadline.left() <= 0:
        unread = "not read: the time budget for evidence ran out"
    elif shown:
        try:
            infos = await _blob_infos(repo, parsed.tree, shown, deadline.left())
        except GitError as err:
            unread = f"not read: {err.message}"
    for path in shown:
        kind = _conflict_kind(path, parsed.stages[path], messages, main_branch)
        full = ""
        note = ""
        info = infos.get(path)
        if unread:
            note = unread
        elif info is None:
            note = "no file at this path in the merge result"
        elif info[1] != "blob":
            note = f"a {info[1]} in the merge result, not a file"
        elif info[2] > BLOB_READ_MAX_BYTES:
            note = f"{info[2]} bytes in the merge result: too large to read"
        elif deadline.left() <= 0:
            note = "not read: the time budget for evidence ran out"
        else:
            try:
                blob = await git.run(["cat-file", "-p", info[0]], cwd=repo, timeout=deadline.left())
            except GitError as err:
                # Evidence is best effort: a failed read must not turn a conflict into a git error.
                note = f"not read: {err.message}"
            else:
                if "\0" in blob.stdout[:8000]:
                    kind = "binary"
                else:
                    full = extract_hunks(blob.stdout, labels=labels)
        if not full:
            full = _describe(path, kind, messages, note, main_branch)
        kinds[path] = kind
        hunks_full[path] = cap_full(full, HUNK_FULL_MAX_CHARS)
        hunks[path] = trim_text(full, max_lines=HUNK_MAX_LINES, max_chars=HUNK_MAX_CHARS)

    texts = [m.text for m in messages if m.kind != "Auto-merging"]
    if len(texts) > MESSAGES_MAX:
        texts = [*texts[: MESSAGES_MAX - 1], f"… {more(len(texts) - MESSAGES_MAX + 1, 'more message')}"]
    evidence: dict[str, Any] = {
        "conflicted_paths": paths,
        "hunks": hunks,
        "hunks_full": hunks_full,
        "kinds": kinds,
        "omitted_paths": len(paths) - len(shown),
        "base": bases[0] if bases else None,
        "main": main_sha,
        "candidate": candidate_sha,
        "tree": parsed.tree,
        "messages": texts,
    }
    if len(bases) > 1:
        evidence["bases"] = bases
    return evidence
