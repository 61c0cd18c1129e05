"""Outbox notifications rendered as Discord message specs: plain data, no ``discord`` import.

A :class:`MessageSpec` holds the content, embeds in Discord's JSON shape, file attachments as bytes
and the slug a Resume button should carry. :class:`~teleclaude.adapters.discord_adapter.DiscordAdapter`
turns it into discord.py objects; keeping the shaping here lets it be read and tested as data.

Every reply is written for a phone: the outcome in the first line, short lines, details after.
Every text that reaches Discord is clipped to Discord's limits here, never by Discord rejecting it.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from integrator import notifications as n
from integrator.outbox import Notification
from integrator.reasons import ReasonCode
from teleclaude.adapters.discord_format import (
    COLOR_BLOCKED,
    CONTENT_MAX,
    EmbedBuilder,
    clip,
    code,
    code_block,
    code_name,
    discord_time,
    escape,
    human_duration,
    markdown_with_code,
    plural,
    short,
)

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")

# The short label of each reason code; a test checks it covers exactly ReasonCode.
REASONS: dict[ReasonCode, str] = {
    ReasonCode.MERGE_CONFLICT: "merge conflict",
    ReasonCode.VERIFY_FAILED: "verify failed",
    ReasonCode.PUSH_REJECTED: "push rejected",
    ReasonCode.BRANCH_MOVED: "branch moved",
    ReasonCode.NOT_REACHABLE: "sha not reachable",
    ReasonCode.GIT_ERROR: "git error",
}


def reason_label(code_: str) -> str:
    """The short label of a reason code; a code this version does not know is shown as its words."""
    try:
        return REASONS[ReasonCode(code_)]
    except ValueError:
        return code_.replace("_", " ")


class NotificationError(ValueError):
    """A notification the adapter cannot render (missing or mistyped field): retrying will not help."""


@dataclass(frozen=True)
class FileSpec:
    filename: str
    data: bytes


@dataclass(frozen=True)
class MessageSpec:
    content: str
    embeds: tuple[dict[str, Any], ...] = ()
    files: tuple[FileSpec, ...] = ()
    resume_slug: str | None = None


# --------------------------------------------------------------------------------------- renderers
def render_candidate_ready(p: n.CandidateReady) -> MessageSpec:
    where = "next in queue" if p.position == 1 else f"#{p.position} in queue"
    who = f"\nResumed by {clip(escape(p.resumed_by), 100)}" if p.resumed_by else ""
    return MessageSpec(f"✅ **{p.slug}** ready — {where}\n{code_name(p.branch)} @ {code(short(p.sha))}{who}")


def render_candidate_superseded(p: n.CandidateSuperseded) -> MessageSpec:
    return MessageSpec(
        f"↪️ **{p.slug}** superseded\n"
        f"{code(short(p.sha))} → {code(short(p.superseded_by))} on {code_name(p.branch)}"
    )


def _main_name(p: n.IntegrationCompleted | n.IntegrationBlocked) -> str:
    """The configured main branch the payload names (older payloads name none)."""
    return p.main_branch or "the main branch"


def render_candidate_withdrawn(p: n.CandidateWithdrawn) -> MessageSpec:
    return MessageSpec(
        f"🚫 **{p.slug}** withdrawn by {clip(escape(p.by), 100)}\n"
        f"{code(p.branch)} @ {code(short(p.sha))} (was {escape(p.was)})\n"
        f"Reason: {clip(escape(p.reason), 500)}"
    )


def render_integration_completed(p: n.IntegrationCompleted) -> MessageSpec:
    main = _main_name(p)
    if p.already_on_main:
        return MessageSpec(
            f"☑️ **{p.slug}** was already on {main}\n{code_name(p.branch)} @ {code(short(p.sha))}: nothing to merge"
        )
    return MessageSpec(
        f"🎉 **{p.slug}** integrated in {human_duration(p.duration_ms / 1000)}\n"
        f"{main} {code(short(p.main_before))} → {code(short(p.main_after))}\n"
        f"{code_name(p.branch)} @ {code(short(p.sha))}"
    )


def _blocked_reason_line(code_: str, evidence: Mapping[str, Any]) -> str:
    reason = reason_label(code_)
    if code_ == "merge_conflict":
        paths = evidence.get("conflicted_paths") or []
        return f"{reason} in {plural(len(paths), 'file')}" if paths else reason
    if code_ == "verify_failed":
        if evidence.get("timed_out"):
            return f"{reason} (timed out)"
        if evidence.get("exit_status") is not None:
            return f"{reason} (exit {evidence['exit_status']})"
    return reason


def _command_text(evidence: Mapping[str, Any]) -> str | None:
    line = evidence.get("command_line")
    if isinstance(line, str) and line:
        return line
    command = evidence.get("command")
    if isinstance(command, list):
        return shlex.join(str(c) for c in command)
    return str(command) if command else None


def _path_list(paths: list[str], kinds: Mapping[str, Any], limit: int) -> tuple[str, bool]:
    lines = []
    for path in paths:
        kind = kinds.get(path)
        lines.append(
            f"• {code(clip(path, 200))}" + (f" ({escape(kind)})" if kind and kind != "content" else "")
        )
    text = "\n".join(lines)
    if len(text) <= limit:
        return text, False
    shown: list[str] = []
    for i, line in enumerate(lines):
        # Leave room for the marker that counts what did not fit after this line.
        after = f"…and {len(lines) - i - 1} more"
        if len("\n".join([*shown, line, after])) > limit:
            shown.append(f"…and {len(lines) - i} more")
            break
        shown.append(line)
    return "\n".join(shown), True


# Evidence keys the embed shows on purpose (or that only repeat one it shows); the rest are listed.
_SHOWN_EVIDENCE = {
    "conflicted_paths", "hunks", "kinds", "omitted_paths", "base", "main", "candidate", "tree", "messages",
    "bases", "command", "command_line", "exit_status", "timed_out", "log_tail", "log_lines", "stderr",
    "last_line",
}  # fmt: skip


def render_integration_blocked(p: n.IntegrationBlocked, full: Mapping[str, Any] | None = None) -> MessageSpec:
    """``full``: the store's untrimmed evidence, when the bot looked it up (for the attached file)."""
    slug, branch, sha, reason_code, evidence = p.slug, p.branch, p.sha, p.reason_code, p.evidence
    follow_slug, follow_path = p.follow_up_slug, p.follow_up_path
    filename = f"evidence-{slug}.txt"
    footer_note = f"Full evidence in the attached file {filename}"

    reason = _blocked_reason_line(reason_code, evidence)
    lines = [f"**Next:** {markdown_with_code(clip(p.next_action, 1500))}"]
    if follow_slug:
        lines.append(f"**Follow-up todo:** {code(follow_slug)}")
        if follow_path:
            lines.append(code_name(follow_path, 300))
    target = f" onto {_main_name(p)} {code(short(evidence['main']))}" if evidence.get("main") else ""
    lines.append(f"{code_name(branch)} @ {code(short(sha))}{target}")
    builder = EmbedBuilder(
        f"Blocked: {slug} — {reason}", "\n".join(lines), color=COLOR_BLOCKED, footer_reserve=len(footer_note)
    )

    if reason_code == "merge_conflict":
        _conflict_fields(builder, evidence)
    else:
        _failure_fields(builder, evidence)
    extra = {
        k: v
        for k, v in evidence.items()
        if k not in _SHOWN_EVIDENCE and not k.endswith("_full") and v not in (None, "")
    }
    if extra:
        details = "\n".join(f"{escape(k)}: {code(_compact(v))}" for k, v in extra.items())
        builder.add_text("Details", details)

    files: tuple[FileSpec, ...] = ()
    if builder.cut or _store_has_more(full):
        files = (FileSpec(filename, evidence_file(p, full)),)
    embed = builder.build(footer_note if builder.cut else None)
    content = f"⛔ **{slug}** blocked: {reason}"
    if files:
        content += "\nFull evidence attached."
    return MessageSpec(clip(content, CONTENT_MAX), embeds=(embed,), files=files, resume_slug=slug)


def _conflict_fields(builder: EmbedBuilder, evidence: Mapping[str, Any]) -> None:
    paths = [str(x) for x in evidence.get("conflicted_paths") or []]
    hunks = evidence.get("hunks") or {}
    kinds = evidence.get("kinds") or {}
    if paths:
        builder.add(f"Conflicted paths ({len(paths)})", lambda limit: _path_list(paths, kinds, limit))
    ordered = [x for x in paths if x in hunks] + [x for x in hunks if x not in paths]
    for path in ordered:
        hunk = str(hunks[path])
        builder.add(path, functools.partial(code_block, hunk, lang="diff"))
    if evidence.get("omitted_paths"):
        builder.add_text(
            "Not shown", f"{plural(int(evidence['omitted_paths']), 'path')} without hunks (see the todo)"
        )
    if evidence.get("base"):
        builder.add_text("Base", code(short(evidence["base"])), inline=True)


def _failure_fields(builder: EmbedBuilder, evidence: Mapping[str, Any]) -> None:
    command = _command_text(evidence)
    if command:
        builder.add(
            "Command", lambda limit: (code(clip(command, limit - 2)), len(command) > limit - 2), min_useful=40
        )
    if evidence.get("exit_status") is not None:
        builder.add_text("Exit status", str(evidence["exit_status"]), inline=True)
    for key, title in (("log_tail", "Log tail"), ("stderr", "Git said")):
        text = evidence.get(key)
        if text:
            builder.add(title, functools.partial(code_block, str(text), keep_tail=True))


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# The attached evidence file is at most this big (Discord takes 10 MiB from a bot); the store keeps
# its texts within integrator.blocked's own caps, so this is only reached by many long sections together.
EVIDENCE_FILE_MAX_BYTES = 1_000_000


def _trimmed_key(full: Mapping[str, Any], key: str) -> str:
    """The trimmed twin of a ``*_full`` key: ``hunks_full`` → ``hunks``, ``log_full`` → ``log_tail``."""
    base = key.removesuffix("_full")
    return base if base in full or f"{base}_tail" not in full else f"{base}_tail"


def _same_text(a: Any, b: Any) -> bool:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same_text(a[k], b[k]) for k in a)
    return str(a).strip() == str(b).strip()


def _store_has_more(full: Mapping[str, Any] | None) -> bool:
    """Whether the store kept more than the notification shows (a hunk or log was trimmed)."""
    if full is None:
        return False
    return any(
        not _same_text(value, full.get(_trimmed_key(full, key), ""))
        for key, value in full.items()
        if key.endswith("_full")
    )


def evidence_file(p: n.IntegrationBlocked, full: Mapping[str, Any] | None = None) -> bytes:
    """:func:`evidence_text` as UTF-8, cut at :data:`EVIDENCE_FILE_MAX_BYTES` with a note saying so."""
    data = evidence_text(p, full).encode("utf-8")
    if len(data) <= EVIDENCE_FILE_MAX_BYTES:
        return data
    note = (
        f"\n… cut at {EVIDENCE_FILE_MAX_BYTES} bytes of {len(data)}; "
        "the whole evidence is in the integrator's database (`integrator blocked --json`)\n"
    ).encode()
    return data[: EVIDENCE_FILE_MAX_BYTES - len(note)].decode("utf-8", "ignore").encode() + note


def evidence_text(p: n.IntegrationBlocked, full: Mapping[str, Any] | None = None) -> str:
    """Everything a blocked notification carries, readable as plain text (the attached file): the
    store's untrimmed texts (``*_full``, from ``full``) in place of the trimmed ones when the bot
    looked them up."""
    evidence: Mapping[str, Any]
    if full is None:
        evidence = p.evidence
    else:
        replaced = {_trimmed_key(full, k) for k in full if k.endswith("_full")}
        evidence = {k.removesuffix("_full"): v for k, v in full.items() if k not in replaced}
    out = [f"Integration blocked: {p.slug}"]
    for key in ("reason_code", "branch", "sha", "next_action", "follow_up_slug", "follow_up_path"):
        if getattr(p, key) is not None:
            out.append(f"{key}: {getattr(p, key)}")
    out.append("")
    sections: list[str] = []
    for key, value in evidence.items():
        if isinstance(value, Mapping):
            for sub, text in value.items():
                sections.append(f"== {key}: {sub} ==\n{text}\n")
        elif isinstance(value, list):
            sections.append(f"== {key} ==\n" + "\n".join(_compact(v) for v in value) + "\n")
        elif isinstance(value, str) and "\n" in value:
            sections.append(f"== {key} ==\n{value}\n")
        else:
            out.append(f"{key}: {_compact(value)}")
    return "\n".join(out) + "\n\n" + "\n".join(sections)


def render_shadow_predictions(nid: int, p: n.ShadowPredictions) -> MessageSpec:
    items = p.items
    blocks = [i for i in items if i.prediction == "would_block"]
    clean = [i for i in items if i.prediction != "would_block"]
    head = f"🔮 **Shadow predictions**: {len(clean)} would integrate, {len(blocks)} would block"
    if not items:
        return MessageSpec("🔮 **Shadow predictions**: none in this batch")
    # Predicted blocks first: they are the ones a reader may want to act on.
    lines = [_prediction_line(i) for i in blocks + clean]
    shown: list[str] = [head]
    filename = f"shadow-predictions-{nid}.txt"
    for count, line in enumerate(lines):
        rest = len(lines) - count
        footer = f"…and {rest} more in {filename}"
        if len("\n".join([*shown, line])) + (len(footer) + 1 if rest > 1 else 0) > CONTENT_MAX:
            shown.append(footer)
            full = "\n".join(_prediction_file_line(i) for i in blocks + clean) + "\n"
            return MessageSpec("\n".join(shown), files=(FileSpec(filename, full.encode("utf-8")),))
        shown.append(line)
    return MessageSpec("\n".join(shown))


def _prediction_line(item: n.ShadowItem) -> str:
    ident = f"{code(item.slug)} {code(short(item.sha))}"
    if item.prediction != "would_block":
        return f"✅ {ident} would integrate"
    paths = item.conflicted_paths
    shown = ", ".join(code(clip(x, 60)) for x in paths[:3])
    more = f" +{len(paths) - 3}" if len(paths) > 3 else ""
    return f"⛔ {ident} would block" + (f": {shown}{more}" if paths else "")


def _prediction_file_line(item: n.ShadowItem) -> str:
    paths = " ".join(item.conflicted_paths)
    tree = item.tree or "-"
    return f"{item.prediction}\t{item.slug}\t{item.sha}\ttree={tree}\t{paths}".rstrip()


def render_mode_changed(p: n.ModeChanged) -> MessageSpec:
    mode, previous = p.mode, p.previous or "?"
    why = f"\nReason: {clip(escape(p.reason), 500)}" if p.reason else ""
    when = f"\n{discord_time(p.at, 'f')}" if p.at else ""
    if p.automatic:
        what = "Automatic rollback" if mode == "shadow" else "Automatic mode change"
        return MessageSpec(f"⚠️ **{what}**: mode is now **{mode}** (was {previous}){why}{when}")
    by = p.by or "someone"
    return MessageSpec(f"🔀 Mode is now **{mode}** (was {previous})\nBy {clip(escape(by), 100)}{why}{when}")


def render_stall_alarm(p: n.StallAlarm) -> MessageSpec:
    stuck = f"stuck on **{p.slug}**" if p.slug else "nothing in progress"
    return MessageSpec(
        f"⏰ **Queue stalled** for {human_duration(float(p.stalled_for_s))}\n"
        f"{plural(p.queue_length, 'candidate')} queued; {stuck}\n"
        f"No progress since {discord_time(p.since)}"
    )


def render_paused(p: n.Paused) -> MessageSpec:
    by = clip(escape(p.by or "someone"), 100)
    why = f"Reason: {clip(escape(p.reason), 500)}" if p.reason else "No reason given"
    return MessageSpec(f"⏸️ **Integration paused** by {by}\n{why}\nQueued candidates wait; nothing is lost.")


def render_unpaused(p: n.Unpaused) -> MessageSpec:
    by = clip(escape(p.by or "someone"), 100)
    return MessageSpec(
        f"▶️ **Integration unpaused** by {by}" + (f"\n{clip(escape(p.reason), 500)}" if p.reason else "")
    )


def render_verify_started(p: n.VerifyStarted) -> MessageSpec:
    base = " + ".join(["main", *(f"**{escape(a)}**" for a in p.ahead)])
    return MessageSpec(
        f"🔬 Verifying **{escape(p.slug)}** {code(short(p.sha))} on {base} (merge {code(short(p.merge_sha))})"
    )


def render_unknown(kind: str, payload: Any) -> MessageSpec:
    """A kind this adapter does not know yet: still delivered (the outbox must not stall on it)."""
    body = json.dumps(payload, sort_keys=True, default=str)
    block, _ = code_block(body, CONTENT_MAX - 60, lang="json")
    return MessageSpec(f"ℹ️ **{escape(kind)}**\n{block}")


def _spec(note: Notification, full: Mapping[str, Any] | None) -> MessageSpec:
    match note.payload:
        case n.CandidateReady() as p:
            return render_candidate_ready(p)
        case n.CandidateSuperseded() as p:
            return render_candidate_superseded(p)
        case n.CandidateWithdrawn() as p:
            return render_candidate_withdrawn(p)
        case n.IntegrationCompleted() as p:
            return render_integration_completed(p)
        case n.IntegrationBlocked() as p:
            return render_integration_blocked(p, full)
        case n.ShadowPredictions() as p:
            return render_shadow_predictions(note.id, p)
        case n.ModeChanged() as p:
            return render_mode_changed(p)
        case n.StallAlarm() as p:
            return render_stall_alarm(p)
        case n.Paused() as p:
            return render_paused(p)
        case n.Unpaused() as p:
            return render_unpaused(p)
        case n.VerifyStarted() as p:
            return render_verify_started(p)
    if note.problem:
        raise NotificationError(note.problem)
    return render_unknown(note.kind, note.data)


def render(note: Notification, full: Mapping[str, Any] | None = None) -> MessageSpec:
    """The message for one outbox notification (``full``: a blocked one's untrimmed evidence)."""
    spec = _spec(note, full)
    return MessageSpec(clip(spec.content, CONTENT_MAX), spec.embeds, spec.files, spec.resume_slug)
