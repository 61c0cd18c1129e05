"""The follow-up todo for a blocked slug (docs/blocked-flow.md).

One follow-up per slug: ``<todos>/<slug>-integration-blocked/`` with ``requirements.md``,
``implementation-plan.md`` and ``state.yaml`` rendered from :mod:`integrator.followup_template`,
plus one entry in ``<todos>/roadmap.yaml``. A repeated block refreshes the files and bumps
``blocked_count``; it never makes a second folder or a second roadmap entry.

Every file is replaced atomically (temporary file in the same directory, then ``os.replace``), so a
crash leaves either the old or the new version, never half of one. ``state.yaml`` is written last
among the todo's files and the roadmap after it: a crash in between is repaired by the next call,
because the roadmap entry is added whenever it is missing.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from integrator import followup_template as tpl
from integrator import models, reasons
from integrator.atomicfile import KEEP, write_atomic
from integrator.blocked.remedy import plan_steps
from integrator.blocked.text import code_span
from integrator.errors import InvalidInput
from integrator.events import check_branch_name, check_sha, check_slug
from integrator.reasons import ReasonCode

log = logging.getLogger(__name__)

TODO_SUFFIX = "-integration-blocked"
ROADMAP_NAME = "roadmap.yaml"
# Beyond this many paths the markdown list stops; the full list stays in the stored evidence.
MAX_LISTED_PATHS = 200
_GENERIC_VALUE_MAX = 300


class RoadmapError(InvalidInput):
    """``roadmap.yaml`` cannot be edited safely (not a YAML list, not YAML, not UTF-8)."""

    code = "invalid_roadmap"


@dataclass(frozen=True)
class FollowUp:
    """The follow-up todo of one slug after a write."""

    slug: str
    path: Path
    created: bool
    blocked_count: int
    roadmap_added: bool = False


def followup_slug(slug: str) -> str:
    return f"{slug}{TODO_SUFFIX}"


# ------------------------------------------------------------------------------------ file writes


def _atomic_write(path: Path, text: str) -> None:
    # KEEP: a shared roadmap keeps its mode; a new file gets 0666 minus the umask, like any the user makes.
    write_atomic(path, text, mode=KEEP)


# ---------------------------------------------------------------------------------------- roadmap


def _rt_yaml(indent: int = 2, block_seq_indent: int = 0) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    # Never re-fold long lines: the default width (80) would rewrite existing descriptions.
    yaml.width = 1_000_000
    yaml.indent(mapping=indent, sequence=indent + block_seq_indent, offset=block_seq_indent)
    return yaml


def _load_roadmap(path: Path, text: str) -> Any:
    try:
        return _rt_yaml().load(text)
    except YAMLError as err:
        raise RoadmapError(f"{path}: not valid YAML, left untouched: {err}") from None


def _entry(todo: str, slug: str) -> CommentedMap:
    entry = CommentedMap()
    entry["slug"] = todo
    entry["group"] = slug
    entry["description"] = f"Integration of {slug} is blocked; see {todo}/requirements.md"
    return entry


def _render_entry(entry: CommentedMap, column: int) -> str:
    seq = CommentedSeq([entry])
    out = io.StringIO()
    _rt_yaml().dump(seq, out)
    pad = " " * column
    return "".join(pad + line for line in out.getvalue().splitlines(keepends=True))


def _is_entries_plus(text: str, before: list[Any], entry: CommentedMap) -> bool:
    """True when ``text`` parses to exactly ``before`` followed by ``entry``."""
    try:
        after = _rt_yaml().load(text)
    except YAMLError:
        return False
    return isinstance(after, list) and list(after[:-1]) == before and after[-1:] == [entry]


def roadmap_with_entry(path: Path, todo: str, group: str) -> str | None:
    """The new text of ``roadmap.yaml`` with the follow-up's entry, or None if it is already there.

    Existing bytes are kept exactly: the file is parsed in ruamel's round-trip mode, and the new
    entry (rendered by ruamel at the list's own indentation) is appended to the unchanged text. A
    full round-trip dump is only the fallback, because it measurably rewrites details (``~`` becomes
    empty, trailing spaces vanish). Raises :class:`RoadmapError` when the file is not a YAML list.
    """
    entry = _entry(todo, group)
    if not path.exists():
        return _render_entry(entry, 0)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise RoadmapError(f"{path}: not UTF-8 text, left untouched") from None
    data = _load_roadmap(path, text)
    if data is None:
        data = CommentedSeq()  # empty or comments only: an empty list
    if not isinstance(data, list):
        found = "a mapping" if isinstance(data, dict) else f"a {type(data).__name__}"
        raise RoadmapError(f"{path}: expected a YAML list of todo entries, found {found}; left untouched")
    if any(isinstance(item, dict) and item.get("slug") == todo for item in data):
        return None
    before = list(data)
    column = data.lc.col if len(data) and isinstance(data, CommentedSeq) and data.lc.col else 0
    newline = "\r\n" if "\r\n" in text else "\n"
    addition = _render_entry(entry, column).replace("\n", newline)
    separator = "" if not text or text.endswith("\n") else newline
    appended = text + separator + addition
    if _is_entries_plus(appended, before, entry):
        return appended
    # A flow-style list (``[a, b]``) cannot take a block item after it: re-dump the whole list.
    _, indent, block_seq_indent = load_yaml_guess_indent(text)
    yaml = _rt_yaml(indent or 2, block_seq_indent or 0)
    data.append(entry)
    out = io.StringIO()
    yaml.dump(data, out)
    if not _is_entries_plus(out.getvalue(), before, entry):
        raise RoadmapError(f"{path}: could not add {todo} without changing other entries; left untouched")
    log.warning("event=roadmap_redumped path=%s todo=%s", path, todo)
    return out.getvalue()


# ------------------------------------------------------------------------------------------ state


def _read_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (YAMLError, UnicodeDecodeError) as err:
        # Our own bookkeeping file: rebuild it rather than block the blocked flow itself.
        log.warning("event=followup_state_unreadable path=%s error=%s", path, err)
        return None
    if not isinstance(data, dict):
        log.warning("event=followup_state_unreadable path=%s error=not-a-mapping", path)
        return None
    return data


def _yaml_scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # A JSON string is a valid YAML double-quoted scalar, so timestamps stay strings on reload.
    return json.dumps(str(value), ensure_ascii=False)


def _render_state(state: dict[str, Any]) -> str:
    return tpl.render(tpl.STATE_YAML, {k: _yaml_scalar(v) for k, v in state.items()})


# --------------------------------------------------------------------------------------- markdown


def fenced(text: str, info: str = "") -> str:
    """A fenced code block whose fence is longer than any backtick run inside ``text``."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _GENERIC_VALUE_MAX else text[: _GENERIC_VALUE_MAX - 1] + "…"


def evidence_markdown(reason_code: str, evidence: dict[str, Any], *, main_branch: str) -> str:
    """The evidence as markdown for requirements.md: the trimmed texts, never the ``*_full`` ones."""
    if reason_code == ReasonCode.MERGE_CONFLICT and "conflicted_paths" in evidence:
        paths = [str(p) for p in evidence.get("conflicted_paths") or []]
        shas = [
            f"{label} {code_span(str(evidence[key]))}"
            for label, key in (("Merge base", "base"), (main_branch, "main"), ("candidate", "candidate"))
            if evidence.get(key)
        ]
        parts = [", ".join(shas) + "." if shas else "", "", f"Conflicted paths ({len(paths)}):", ""]
        parts += [f"- {code_span(p)}" for p in paths[:MAX_LISTED_PATHS]]
        if len(paths) > MAX_LISTED_PATHS:
            parts.append(f"- … and {len(paths) - MAX_LISTED_PATHS} more")
        hunks: dict[str, Any] = evidence.get("hunks") or {}
        if len(hunks) < len(paths):
            parts += ["", f"Hunks are shown for the first {len(hunks)} paths; the rest are listed above."]
        for path, text in hunks.items():
            parts += ["", f"### {code_span(str(path))}", "", fenced(str(text))]
        return "\n".join(parts).strip("\n")
    if reason_code == ReasonCode.VERIFY_FAILED and "log_tail" in evidence:
        how = "timed out" if evidence.get("timed_out") else f"exit status {evidence.get('exit_status')}"
        return "\n".join(
            [
                f"Command: {code_span(str(evidence.get('command_line', '')))} ({how}).",
                "",
                "Log tail:",
                "",
                fenced(str(evidence["log_tail"])),
            ]
        )
    if "stderr" in evidence:
        return "\n".join(
            [
                f"Command: {code_span(str(evidence.get('command_line', '')))}.",
                "",
                "stderr:",
                "",
                fenced(str(evidence["stderr"])),
            ]
        )
    shown = {k: v for k, v in evidence.items() if not k.endswith("_full")}
    if not shown:
        return "(no evidence recorded)"
    return "\n".join(f"- {k}: {code_span(_short(v))}" for k, v in shown.items())


def checklist_markdown(
    reason_code: str, *, slug: str, branch: str, evidence: dict[str, Any], remote: str, main_branch: str
) -> str:
    lines: list[str] = []
    for step in plan_steps(
        reason_code, slug=slug, branch=branch, evidence=evidence, remote=remote, main_branch=main_branch
    ):
        lines.append(f"- [ ] {step.text}")
        if step.commands:
            block = fenced("\n".join(step.commands), "sh")
            lines += [""] + ["  " + line for line in block.splitlines()] + [""]
    return "\n".join(lines).strip("\n")


# -------------------------------------------------------------------------------------------- api


def _validate(slug: str, *, optional: tuple[str, ...] = (), **shas: str) -> None:
    try:
        check_slug(slug)
    except ValueError as err:
        raise InvalidInput(f"slug: {err}") from None
    for name, value in shas.items():
        if not value and name in optional:
            continue
        try:
            check_sha(value)
        except ValueError as err:
            raise InvalidInput(f"{name}: {err}") from None


def write_followup(
    todos_dir: Path,
    *,
    slug: str,
    branch: str,
    sha: str,
    reason_code: str,
    evidence: dict[str, Any],
    next_action: str,
    main_sha: str,
    blocked_at: str,
    remote: str,
    main_branch: str,
) -> FollowUp:
    """Create or refresh the one follow-up todo of ``slug``; returns what is on disk now.

    Everything is validated (slug, branch, shas, reason code, the roadmap) before the first write,
    so an invalid call changes nothing. Recording the same block twice (same sha, reason code and
    ``blocked_at``, e.g. after a crash) refreshes the files without counting it again.
    """
    # main_sha may be "" when the block happened before main could be read (a git error on fetch).
    _validate(slug, optional=("main_sha",), sha=sha, main_sha=main_sha)
    try:
        check_branch_name(branch)
    except ValueError as err:
        raise InvalidInput(f"branch: {err}") from None
    code = reasons.check_reason_code(reason_code)
    if not blocked_at:
        raise InvalidInput("blocked_at: must not be empty")

    todo = followup_slug(slug)
    folder = todos_dir / todo
    roadmap_path = todos_dir / ROADMAP_NAME
    roadmap_text = roadmap_with_entry(roadmap_path, todo, slug)
    state = _blocked_state(
        _read_state(folder / "state.yaml") or {},
        slug=slug,
        todo=todo,
        branch=branch,
        sha=sha,
        main_sha=main_sha,
        reason_code=reason_code,
        blocked_at=blocked_at,
    )
    count = int(state["blocked_count"])
    values = _template_values(state, code, evidence, next_action, remote=remote, main_branch=main_branch)
    created = not folder.exists()
    _write_todo(folder, values, state, roadmap_path, roadmap_text)
    log.info(
        "event=followup_written todo=%s reason=%s blocked_count=%d created=%s roadmap_added=%s",
        todo,
        reason_code,
        count,
        created,
        roadmap_text is not None,
    )
    return FollowUp(
        slug=todo, path=folder, created=created, blocked_count=count, roadmap_added=roadmap_text is not None
    )


def _blocked_state(
    previous: dict[str, Any],
    *,
    slug: str,
    todo: str,
    branch: str,
    sha: str,
    main_sha: str,
    reason_code: str,
    blocked_at: str,
) -> dict[str, Any]:
    """state.yaml after this block: counted once per distinct block, first_blocked_at kept."""
    count = previous.get("blocked_count")
    count = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else 0
    same_block = (previous.get("sha"), previous.get("reason_code"), previous.get("last_blocked_at")) == (
        sha,
        reason_code,
        blocked_at,
    )
    if not same_block:
        count += 1
    first = previous.get("first_blocked_at")
    return {
        "status": "open",
        "slug": slug,
        "todo": todo,
        "branch": branch,
        "sha": sha,
        "main_sha": main_sha or None,
        "reason_code": reason_code,
        "blocked_count": count,
        "first_blocked_at": first if isinstance(first, str) and first else blocked_at,
        "last_blocked_at": blocked_at,
        "resolved_at": None,
        "merge_sha": None,
    }


def _template_values(
    state: dict[str, Any],
    code: ReasonCode,
    evidence: dict[str, Any],
    next_action: str,
    *,
    remote: str,
    main_branch: str,
) -> dict[str, str]:
    """What the requirements and plan templates show, from the new state and the block's evidence."""
    slug, branch, sha, main_sha = state["slug"], state["branch"], state["sha"], state["main_sha"]
    return {
        "slug": code_span(slug),
        "branch": code_span(branch),
        "sha": code_span(sha),
        "main_sha": code_span(main_sha) if main_sha else "(unknown)",
        "main_branch": code_span(main_branch),
        "reason_code": str(state["reason_code"]),
        "reason_summary": reasons.summary(code, main_branch=main_branch),
        "blocked_count": str(state["blocked_count"]),
        "first_blocked_at": str(state["first_blocked_at"]),
        "last_blocked_at": str(state["last_blocked_at"]),
        "evidence": evidence_markdown(state["reason_code"], evidence, main_branch=main_branch),
        "next_action": next_action.strip(),
        "checklist": checklist_markdown(
            state["reason_code"],
            slug=slug,
            branch=branch,
            evidence=evidence,
            remote=remote,
            main_branch=main_branch,
        ),
    }


def _write_todo(
    folder: Path, values: dict[str, str], state: dict[str, Any], roadmap_path: Path, roadmap_text: str | None
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(folder / "requirements.md", tpl.render(tpl.REQUIREMENTS_MD, values))
    _atomic_write(folder / "implementation-plan.md", tpl.render(tpl.IMPLEMENTATION_PLAN_MD, values))
    _atomic_write(folder / "state.yaml", _render_state(state))
    if roadmap_text is not None:
        _atomic_write(roadmap_path, roadmap_text)


def resolve_followup(todos_dir: Path, slug: str, *, merge_sha: str, resolved_at: str) -> bool:
    """Mark the follow-up of ``slug`` resolved; False when there is none. A second call changes nothing."""
    _validate(slug, merge_sha=merge_sha)
    folder = todos_dir / followup_slug(slug)
    state_path = folder / "state.yaml"
    if not folder.is_dir() or not state_path.exists():
        return False
    state = _read_state(state_path) or {}
    if state.get("status") == "resolved":
        return True
    note = tpl.render(
        tpl.RESOLUTION_MD,
        {"slug": code_span(slug), "merge_sha": code_span(merge_sha), "resolved_at": resolved_at},
    )
    requirements = folder / "requirements.md"
    if requirements.is_file():
        text = requirements.read_text(encoding="utf-8")
        # A crash after this write but before state.yaml's would otherwise append the note twice.
        if note.strip() not in text:
            _atomic_write(requirements, text.rstrip("\n") + "\n" + note)
    fields = (
        "slug",
        "todo",
        "branch",
        "sha",
        "main_sha",
        "reason_code",
        "blocked_count",
        "first_blocked_at",
        "last_blocked_at",
    )
    resolved: dict[str, Any] = {"status": "resolved", **{k: state.get(k) for k in fields}}
    resolved.update(slug=slug, todo=followup_slug(slug), resolved_at=resolved_at, merge_sha=merge_sha)
    _atomic_write(state_path, _render_state(resolved))
    log.info("event=followup_resolved todo=%s merge_sha=%s", followup_slug(slug), merge_sha)
    return True


# ------------------------------------------------------------------------------ the followups table
# One row per slug mirrors its todo for queries (``integrator blocked``, rollout evidence). Each
# function takes the caller's connection, so the row changes in the block's (or landing's) one
# transaction; the files are written outside it, before the block and after the landing.


def record_block(conn: sqlite3.Connection, note: FollowUp, *, slug: str, sha: str, now: str) -> None:
    """Open (or reopen) the slug's follow-up row and count this block."""
    conn.execute(
        "INSERT INTO followups (slug, todo_slug, path, status, sha, blocked_count, updated_at)"
        " VALUES (?, ?, ?, 'open', ?, 1, ?) ON CONFLICT(slug) DO UPDATE SET status = 'open',"
        " sha = excluded.sha, blocked_count = followups.blocked_count + 1, updated_at = excluded.updated_at",
        (slug, note.slug, str(note.path), sha, now),
    )


def record_resolved(conn: sqlite3.Connection, slug: str, *, now: str) -> None:
    """The slug integrated: its follow-up row (if it has one) is resolved."""
    conn.execute("UPDATE followups SET status = 'resolved', updated_at = ? WHERE slug = ?", (now, slug))


def record_of(conn: sqlite3.Connection, slug: str) -> models.FollowUp | None:
    """The slug's follow-up row: ``todo_slug``, ``path``, ``status``, ``blocked_count``."""
    row = conn.execute(
        "SELECT todo_slug, path, status, blocked_count FROM followups WHERE slug = ?", (slug,)
    ).fetchone()
    return models.FollowUp(**dict(row)) if row else None


def records(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(slug, status) of every follow-up row, by slug."""
    return [(str(r[0]), str(r[1])) for r in conn.execute("SELECT slug, status FROM followups ORDER BY slug")]
