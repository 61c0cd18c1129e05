"""Evidence and next action for a blocked candidate (DESIGN §8).

Each blocked outcome carries evidence a person can act on without rerunning anything: for a
conflict, the conflicted paths and the conflict hunks read from the tree ``git merge-tree`` wrote;
for a failed verify, the log tail; for a git failure, the command and its stderr. Every text meant
for a Discord embed or a markdown todo is trimmed here, with the untrimmed text kept beside it
(``*_full``) for the store and for attachments.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integrator import git
from integrator.errors import GitError, InvalidInput
from integrator.events import check_sha
from integrator.reasons import check_reason_code

log = logging.getLogger(__name__)

# Sizes chosen so one path's hunks fit a Discord embed field set (1,024 chars per field, 6,000 per
# embed) with room for the heading, and a todo stays readable.
HUNK_MAX_LINES = 60
HUNK_MAX_CHARS = 1_500
HUNK_MAX_PATHS = 20
HUNK_CONTEXT_LINES = 3
HUNK_FULL_MAX_CHARS = 32_000
# A conflicted blob larger than this is described, not read: binary assets can be huge.
BLOB_READ_MAX_BYTES = 1_000_000
MESSAGES_MAX = 100

LOG_TAIL_LINES = 80
LOG_TAIL_CHARS = 4_000
LOG_FULL_MAX_CHARS = 200_000
STDERR_TAIL_LINES = 40
STDERR_FULL_MAX_CHARS = 64_000

_ENTRY_RE = re.compile(r"(?P<mode>[0-7]{6}) (?P<oid>[0-9a-f]{40,64}) (?P<stage>[123])\t(?P<path>.*)", re.S)
_OID_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_BATCH_OK_RE = re.compile(r"[0-9a-f]{40,64} (\w+) (\d+)")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_URL_CREDENTIALS_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_SECRET_CONFIG_RE = re.compile(r"(?i)(extraheader|token|password|secret|credential)[^=]*=")
REDACTED = "***"


# --------------------------------------------------------------------------------------- trimming


def _more(count: int, what: str) -> str:
    return f"{count} {what}" + ("" if count == 1 else "s")


def trim_text(text: str, *, max_lines: int = HUNK_MAX_LINES, max_chars: int = HUNK_MAX_CHARS) -> str:
    """Keep the head of ``text`` within both limits, ending with ``… N more lines`` when cut.

    Lines are ``\\n``-separated; the result never has more than ``max_lines`` of them nor more than
    ``max_chars`` characters, marker included.
    """
    return _trim(text, max_lines=max_lines, max_chars=max_chars, from_end=False)


def tail_text(text: str, *, max_lines: int = LOG_TAIL_LINES, max_chars: int = LOG_TAIL_CHARS) -> str:
    """Keep the tail of ``text`` (the end of a log is where the failure is), marker first."""
    return _trim(text, max_lines=max_lines, max_chars=max_chars, from_end=True)


def _trim(text: str, *, max_lines: int, max_chars: int, from_end: bool) -> str:
    if max_lines < 2 or max_chars < 40:
        raise ValueError("trim limits too small: need max_lines >= 2 and max_chars >= 40")
    lines = text.split("\n")
    if len(lines) <= max_lines and len(text) <= max_chars:
        return text
    word = "earlier line" if from_end else "more line"
    # Budget for the widest marker this text can need, so the marker always fits.
    marker_room = len(f"… {_more(len(lines), word)}") + 1
    budget = max_chars - marker_room
    kept: list[str] = []
    used = 0
    partial = False
    for line in reversed(lines) if from_end else lines:
        if len(kept) == max_lines - 1:
            break
        cost = len(line) + (1 if kept else 0)
        if used + cost > budget:
            room = budget - used - (1 if kept else 0) - 1
            # A long line is still worth its start (or end): often the only line there is.
            if room >= 20:
                kept.append("…" + line[-room:] if from_end else line[:room] + "…")
                partial = True
            break
        kept.append(line)
        used += cost
    omitted = len(lines) - len(kept) + (1 if partial else 0)
    marker = f"… {_more(omitted, word)}"
    if from_end:
        kept.reverse()
        return "\n".join([marker, *kept])
    return "\n".join([*kept, marker])


def _cap_full(text: str, limit: int, *, from_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    omitted = len(text) - limit
    if from_end:
        return f"… {omitted} earlier characters omitted\n" + text[-limit:]
    return text[:limit] + f"\n… {omitted} more characters omitted"


# -------------------------------------------------------------------------------------- redaction


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove credentials: userinfo in URLs and any of ``secrets`` (e.g. the push credential)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _URL_CREDENTIALS_RE.sub(rf"\1{REDACTED}@", text)


def redact_command(command: Sequence[str], secrets: Sequence[str] = ()) -> list[str]:
    """Redact a command line: push options carry the integrator credential (DESIGN §9)."""
    out: list[str] = []
    hide_next = False
    for arg in command:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg in ("-o", "--push-option"):
            hide_next = True
            out.append(arg)
        elif arg.startswith("--push-option="):
            out.append(f"--push-option={REDACTED}")
        elif arg.startswith("-o") and len(arg) > 2:
            out.append(f"-o{REDACTED}")
        elif _SECRET_CONFIG_RE.match(arg):
            out.append(arg.split("=", 1)[0] + "=" + REDACTED)
        else:
            out.append(redact(arg, secrets))
    return out


def _clean_log(text: str, secrets: Sequence[str]) -> str:
    return redact(_ANSI_RE.sub("", text.replace("\r\n", "\n")), secrets)


# ------------------------------------------------------------------------------- conflict evidence


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


_MARKER_START = re.compile(r"(<{7,})(?: |$)")


def extract_hunks(
    content: str, *, context: int = HUNK_CONTEXT_LINES, labels: Mapping[str, str] | None = None
) -> str:
    """The conflict regions of a file (``<<<<<<<`` … ``>>>>>>>``) with ``context`` lines around each.

    Regions whose context touches are merged. Each region starts with ``@@ lines A-B @@``: 1-based
    lines of the file *with* its markers, as ``git merge`` leaves it in a work tree.
    ``labels`` renames marker labels (git labels them with the 40-hex shas it was given).
    Returns "" when the file has no conflict markers.
    """
    lines = [line.removesuffix("\r") for line in content.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    regions: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        start = _MARKER_START.match(lines[i])
        if start is None:
            i += 1
            continue
        # The closing marker has the same length: nested conflicts from a recursive merge base use
        # longer markers inside, and must not end the outer region.
        end_re = re.compile(">" * len(start.group(1)) + r"(?: |$)")
        j = i + 1
        while j < len(lines) and not end_re.match(lines[j]):
            j += 1
        end = min(j, len(lines) - 1)
        regions.append((i, end))
        i = end + 1
    if not regions:
        return ""
    spans: list[list[int]] = []
    for first, last in regions:
        lo, hi = max(0, first - context), min(len(lines) - 1, last + context)
        if spans and lo <= spans[-1][1] + 1:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    out: list[str] = []
    for lo, hi in spans:
        out.append(f"@@ lines {lo + 1}-{hi + 1} @@")
        out.extend(lines[lo : hi + 1])
    text = "\n".join(out)
    return _relabel(text, labels) if labels else text


def _relabel(text: str, labels: Mapping[str, str]) -> str:
    for old, new in labels.items():
        text = text.replace(old, new)
    return text


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
    if merged.returncode not in (0, 1) or not _OID_RE.fullmatch(first):
        last = merged.stderr.strip().splitlines()[-1] if merged.stderr.strip() else "no stderr"
        raise GitError(f"git merge-tree failed: {last}", command=["git", *args], stderr=merged.stderr)
    parsed = _parse_merge_tree(merged.stdout)
    paths = list(parsed.stages)
    # Two 40-hex shas on every marker and message are hard to read; name the sides instead.
    labels = {
        main_sha: f"{main_branch} ({main_sha[:10]})",
        candidate_sha: f"candidate ({candidate_sha[:10]})",
    }
    messages = tuple(_Message(m.paths, m.kind, _relabel(m.text, labels)) for m in parsed.messages)

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
        hunks_full[path] = _cap_full(full, HUNK_FULL_MAX_CHARS)
        hunks[path] = trim_text(full)

    texts = [m.text for m in messages if m.kind != "Auto-merging"]
    if len(texts) > MESSAGES_MAX:
        texts = [*texts[: MESSAGES_MAX - 1], f"… {_more(len(texts) - MESSAGES_MAX + 1, 'more message')}"]
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


# ------------------------------------------------------------------------- verify and git evidence


def verify_evidence(
    command: list[str],
    exit_status: int,
    log: str,
    *,
    timed_out: bool = False,
    secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """Evidence for ``verify_failed``: the command, its exit status and the log's tail."""
    cleaned = _clean_log(log, secrets)
    shown = redact_command(command, secrets)
    return {
        "command": shown,
        "command_line": shlex.join(shown),
        "exit_status": exit_status,
        "timed_out": timed_out,
        "log_tail": tail_text(cleaned.rstrip("\n"), max_lines=LOG_TAIL_LINES, max_chars=LOG_TAIL_CHARS),
        "log_full": _cap_full(cleaned, LOG_FULL_MAX_CHARS, from_end=True),
        "log_lines": cleaned.count("\n") + (0 if cleaned.endswith("\n") or not cleaned else 1),
    }


def git_failure_evidence(command: list[str], stderr: str, *, secrets: Sequence[str] = ()) -> dict[str, Any]:
    """Evidence for ``git_error`` (and a rejected push): the command and what git said."""
    cleaned = _clean_log(stderr, secrets)
    shown = redact_command(command, secrets)
    lines = [line for line in cleaned.strip().splitlines() if line.strip()]
    return {
        "command": shown,
        "command_line": shlex.join(shown),
        "stderr": tail_text(cleaned.strip(), max_lines=STDERR_TAIL_LINES, max_chars=LOG_TAIL_CHARS),
        "stderr_full": _cap_full(cleaned, STDERR_FULL_MAX_CHARS, from_end=True),
        "last_line": lines[-1] if lines else "",
    }


# ------------------------------------------------------------------------------------ next action


def _q(value: str) -> str:
    return shlex.quote(value)


def emit_command(slug: str, branch: str, sha: str = '"$(git rev-parse HEAD)"') -> str:
    """The command a worker runs to announce a new candidate for ``slug``."""
    return (
        f'integrator emit finalize_ready --slug {_q(slug)} --branch {_q(branch)} --sha {sha} --worker "$USER"'
    )


def update_command(branch: str, *, remote: str, main_branch: str) -> str:
    return f"git fetch {_q(remote)} && git switch {_q(branch)} && git merge {_q(f'{remote}/{main_branch}')}"


def resume_command(slug: str) -> str:
    return f"integrator resume {_q(slug)}"


def _main_moved(evidence: dict[str, Any]) -> bool:
    """A push rejected after the retries ran out means main moved; the runtime records ``retries``."""
    return "retries" in evidence or bool(evidence.get("main_moved"))


def _new_tip(evidence: dict[str, Any], remote: str, branch: str) -> str:
    tip = evidence.get("branch_tip")
    if isinstance(tip, str) and _is_sha(tip):
        return tip
    return f'"$(git rev-parse {_q(f"{remote}/{branch}")})"'


def _push_sha_command(evidence: dict[str, Any], remote: str, branch: str) -> str:
    sha = evidence.get("sha")
    if isinstance(sha, str) and _is_sha(sha):
        return f"git push {_q(remote)} {_q(f'{sha}:refs/heads/{branch}')}"
    return f"git push {_q(remote)} {_q(branch)}"


def _is_sha(value: str) -> bool:
    try:
        check_sha(value)
    except ValueError:
        return False
    return True


def code_span(text: str) -> str:
    """A markdown code span that survives backticks and line breaks in ``text`` (paths, branches)."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _path_list(paths: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(code_span(p) for p in paths[:limit])
    if len(paths) > limit:
        shown += f" (+{len(paths) - limit} more)"
    return shown or "the conflicted files"


def next_action(
    reason_code: str,
    *,
    slug: str,
    branch: str,
    evidence: dict[str, Any],
    remote: str,
    main_branch: str,
) -> str:
    """One sentence saying exactly what unblocks this candidate, with the commands filled in."""
    check_reason_code(reason_code)
    emit = code_span(emit_command(slug, branch))
    push = code_span(f"git push {_q(remote)} {_q(branch)}")
    update = code_span(update_command(branch, remote=remote, main_branch=main_branch))
    resume = code_span(resume_command(slug))
    if reason_code == "merge_conflict":
        paths = [str(p) for p in evidence.get("conflicted_paths") or []]
        return (
            f"Merge {main_branch} into {branch} ({update}), resolve the conflicts in {_path_list(paths)}, "
            f"commit and push ({push}), then emit finalize_ready with the new sha: {emit}."
        )
    if reason_code == "verify_failed":
        cmd = str(evidence.get("command_line") or "the verify command")
        status = evidence.get("exit_status")
        why = "timed out" if evidence.get("timed_out") else f"exited with status {status}"
        return (
            f"The verify command {code_span(cmd)} {why} on {main_branch}+{branch}: reproduce it with "
            f"{code_span(update_command(branch, remote=remote, main_branch=main_branch) + ' && ' + cmd)}, "
            f"fix the failure, push ({push}), then emit finalize_ready with the new sha: {emit}."
        )
    if reason_code == "push_rejected" and not _main_moved(evidence):
        said = evidence.get("last_line") or "see the stderr in the evidence"
        return (
            f"The remote refused the integrator's push of {main_branch} ({said}): check the remote's hooks "
            f"and the integrator credential ({code_span('integrator authority verify')}), then run {resume}."
        )
    if reason_code == "push_rejected":
        return (
            f"{main_branch} kept moving while {slug} was being integrated and every push was rejected; "
            f"nothing needs fixing on {branch}: once {main_branch} settles, run {resume}."
        )
    if reason_code == "branch_moved":
        return (
            f"{branch} moved after finalize_ready, so the announced sha is no longer its tip: if the new "
            f"tip is what should land, emit finalize_ready for it: "
            f"{code_span(emit_command(slug, branch, _new_tip(evidence, remote, branch)))}."
        )
    if reason_code == "not_reachable":
        return (
            f"The candidate sha is not on {remote}: push it "
            f"({code_span(_push_sha_command(evidence, remote, branch))}), then run {resume}."
        )
    if reason_code == "git_error":
        said = evidence.get("last_line") or "see the stderr in the evidence"
        return (
            f"git failed ({said}): check the stderr in the evidence and the remote "
            f"({code_span(f'git ls-remote {_q(remote)} {_q(main_branch)} {_q(branch)}')}), then run {resume}."
        )
    raise AssertionError("unreachable: check_reason_code accepted an unknown code")


@dataclass(frozen=True)
class Step:
    """One checklist item of a follow-up plan; ``commands`` are shell lines to run in order."""

    text: str
    commands: tuple[str, ...] = ()


def plan_steps(
    reason_code: str,
    *,
    slug: str,
    branch: str,
    evidence: dict[str, Any],
    remote: str,
    main_branch: str,
) -> list[Step]:
    """The checklist that unblocks the candidate: fix, push, announce, confirm."""
    check_reason_code(reason_code)
    push = f"git push {_q(remote)} {_q(branch)}"
    update = update_command(branch, remote=remote, main_branch=main_branch)
    confirm = Step(
        f"Confirm it integrated (`integrator status` lists {slug} as integrated); this follow-up is "
        "then marked resolved by the integrator.",
        # `status` takes no slug argument: filter its text for this one.
        (f"integrator status | grep -F -- {_q(slug)}",),
    )
    announce = Step("Emit `finalize_ready` for the new tip.", (emit_command(slug, branch),))
    if reason_code == "merge_conflict":
        paths = [str(p) for p in evidence.get("conflicted_paths") or []]
        return [
            Step(
                f"Merge {main_branch} into {branch} and resolve the conflicts in {_path_list(paths, 10)}.",
                (update, "git add -- <resolved paths> && git commit"),
            ),
            Step("Push the branch.", (push,)),
            announce,
            confirm,
        ]
    if reason_code == "verify_failed":
        cmd = str(evidence.get("command_line") or "<verify command>")
        return [
            Step(f"Reproduce the verify failure on {main_branch}+{branch}.", (update, cmd)),
            Step("Fix the failure and commit.", ()),
            Step("Push the branch.", (push,)),
            announce,
            confirm,
        ]
    if reason_code in ("push_rejected", "git_error"):
        if reason_code == "push_rejected" and _main_moved(evidence):
            first = Step(f"Wait until {main_branch} stops moving (nothing to fix on {branch}).", ())
        elif reason_code == "push_rejected":
            first = Step(
                "Read why the remote refused the push (stderr in the evidence); check its hooks and "
                "the integrator credential.",
                ("integrator authority verify",),
            )
        else:
            first = Step(
                "Read the git stderr in the evidence and check the remote.",
                (f"git ls-remote {_q(remote)} {_q(main_branch)} {_q(branch)}",),
            )
        return [first, Step("Requeue the candidate.", (resume_command(slug),)), confirm]
    if reason_code == "branch_moved":
        return [
            Step(
                f"Check that the new tip of {branch} is what should land.",
                (f"git fetch {_q(remote)} && git log --oneline -5 {_q(f'{remote}/{branch}')}",),
            ),
            Step(
                "Emit `finalize_ready` for the new tip.",
                (emit_command(slug, branch, _new_tip(evidence, remote, branch)),),
            ),
            confirm,
        ]
    if reason_code == "not_reachable":
        return [
            Step(f"Push the candidate sha to {remote}.", (_push_sha_command(evidence, remote, branch),)),
            Step("Requeue the candidate.", (resume_command(slug),)),
            confirm,
        ]
    raise AssertionError("unreachable: check_reason_code accepted an unknown code")
