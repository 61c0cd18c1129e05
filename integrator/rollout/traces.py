"""The Traceability section of a todo's requirements: which code and tests deliver it, and whether they exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from integrator.rollout.models import Trace

_TRACE_TOKEN: Final = re.compile(r"`([^`\s]+)`")
_TRACE_PATH: Final = re.compile(r"[A-Za-z0-9_.\-/]+(?:::[A-Za-z_][A-Za-z0-9_.]*)?")
_TRACE_HEADING: Final = re.compile(r"^(#{1,6})\s+Traceability\b", re.IGNORECASE)
_HEADING: Final = re.compile(r"^(#{1,6})\s")


def _symbol_defined(text: str, symbol: str) -> bool:
    name = re.escape(symbol.rsplit(".", 1)[-1])
    return bool(
        re.search(rf"^[ \t]*(?:async[ \t]+def|def|class)[ \t]+{name}\b", text, re.MULTILINE)
        or re.search(rf"^{name}[ \t]*[:=]", text, re.MULTILINE)
    )


def parse_traces(text: str) -> list[tuple[str, int]]:
    """Backticked ``path`` / ``path::symbol`` tokens in the Traceability section, with their lines."""
    found: list[tuple[str, int]] = []
    level = 0
    for number, line in enumerate(text.splitlines(), start=1):
        heading = _HEADING.match(line)
        if heading:
            trace = _TRACE_HEADING.match(line)
            if trace:
                level = len(trace.group(1))
                continue
            if level and len(heading.group(1)) <= level:
                level = 0
        if not level:
            continue
        for token in _TRACE_TOKEN.findall(line):
            path = token.split("::", 1)[0]
            if _TRACE_PATH.fullmatch(token) and ("/" in path or "." in path.lstrip(".")):
                found.append((token, number))
    return found


def load_traces(text: str, root: Path) -> tuple[Trace, ...]:
    """Each trace in ``text`` resolved against the project ``root``."""
    traces: list[Trace] = []
    for token, line in parse_traces(text):
        rel, _, symbol = token.partition("::")
        target = root / rel
        # Traces are project-relative; anything escaping the project counts as missing.
        inside = not Path(rel).is_absolute() and ".." not in Path(rel).parts
        exists = inside and target.exists()
        found: bool | None = None
        if symbol and exists and target.is_file():
            try:
                found = _symbol_defined(target.read_text(encoding="utf-8"), symbol)
            except (OSError, UnicodeDecodeError):
                found = None
        traces.append(Trace(token, line, exists, found))
    return tuple(traces)
