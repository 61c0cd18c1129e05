"""Text helpers for blocked evidence: trimming to a size a person (and Discord) can take, redaction.

Every text meant for a Discord embed or a markdown todo is trimmed with :func:`trim_text` or
:func:`tail_text`; the untrimmed text is kept beside it (``*_full``, capped by :func:`cap_full`) for
the store and for attachments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_URL_CREDENTIALS_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_SECRET_CONFIG_RE = re.compile(r"(?i)(extraheader|token|password|secret|credential)[^=]*=")
REDACTED = "***"


def more(count: int, what: str) -> str:
    """``"1 more line"`` / ``"3 more lines"``: a count with its noun."""
    return f"{count} {what}" + ("" if count == 1 else "s")


# --------------------------------------------------------------------------------------- trimming


def trim_text(text: str, *, max_lines: int, max_chars: int) -> str:
    """Keep the head of ``text`` within both limits, ending with ``… N more lines`` when cut.

    Lines are ``\\n``-separated; the result never has more than ``max_lines`` of them nor more than
    ``max_chars`` characters, marker included.
    """
    return _trim(text, max_lines=max_lines, max_chars=max_chars, from_end=False)


def tail_text(text: str, *, max_lines: int, max_chars: int) -> str:
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
    marker_room = len(f"… {more(len(lines), word)}") + 1
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
    marker = f"… {more(omitted, word)}"
    if from_end:
        kept.reverse()
        return "\n".join([marker, *kept])
    return "\n".join([*kept, marker])


def cap_full(text: str, limit: int, *, from_end: bool = False) -> str:
    """The "untrimmed" text, still bounded: a runaway log must not fill the database."""
    if len(text) <= limit:
        return text
    omitted = len(text) - limit
    if from_end:
        return f"… {omitted} earlier characters omitted\n" + text[-limit:]
    return text[:limit] + f"\n… {omitted} more characters omitted"


def code_span(text: str) -> str:
    """A markdown code span that survives backticks and line breaks in ``text`` (paths, branches)."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# -------------------------------------------------------------------------------------- redaction


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove credentials: userinfo in URLs and any of ``secrets`` (e.g. the push credential)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _URL_CREDENTIALS_RE.sub(rf"\1{REDACTED}@", text)


def redact_command(command: Sequence[str], secrets: Sequence[str] = ()) -> list[str]:
    """Redact a command line: push options carry the integrator credential."""
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


def clean_log(text: str, secrets: Sequence[str]) -> str:
    """A process's output as plain text: CRLF to LF, terminal escapes gone, credentials redacted."""
    return redact(_ANSI_RE.sub("", text.replace("\r\n", "\n")), secrets)
