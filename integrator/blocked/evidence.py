"""Evidence for a failed verify and for a git command that failed: the command, what it said, the tail.

The tail is what a person reads first (the end of a log is where the failure is); the capped full
text (``*_full``) stays in the store and goes out as an attachment.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from integrator.blocked.text import cap_full, clean_log, redact_command, tail_text

LOG_TAIL_LINES = 80
LOG_TAIL_CHARS = 4_000
LOG_FULL_MAX_CHARS = 200_000
STDERR_TAIL_LINES = 40
STDERR_FULL_MAX_CHARS = 64_000


def verify_evidence(
    command: list[str],
    exit_status: int,
    log: str,
    *,
    timed_out: bool = False,
    secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """Evidence for ``verify_failed``: the command, its exit status and the log's tail."""
    cleaned = clean_log(log, secrets)
    shown = redact_command(command, secrets)
    return {
        "command": shown,
        "command_line": shlex.join(shown),
        "exit_status": exit_status,
        "timed_out": timed_out,
        "log_tail": tail_text(cleaned.rstrip("\n"), max_lines=LOG_TAIL_LINES, max_chars=LOG_TAIL_CHARS),
        "log_full": cap_full(cleaned, LOG_FULL_MAX_CHARS, from_end=True),
        "log_lines": cleaned.count("\n") + (0 if cleaned.endswith("\n") or not cleaned else 1),
    }


def git_failure_evidence(command: list[str], stderr: str, *, secrets: Sequence[str] = ()) -> dict[str, Any]:
    """Evidence for ``git_error`` (and a rejected push): the command and what git said."""
    cleaned = clean_log(stderr, secrets)
    shown = redact_command(command, secrets)
    lines = [line for line in cleaned.strip().splitlines() if line.strip()]
    return {
        "command": shown,
        "command_line": shlex.join(shown),
        "stderr": tail_text(cleaned.strip(), max_lines=STDERR_TAIL_LINES, max_chars=LOG_TAIL_CHARS),
        "stderr_full": cap_full(cleaned, STDERR_FULL_MAX_CHARS, from_end=True),
        "last_line": lines[-1] if lines else "",
    }
