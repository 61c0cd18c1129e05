"""The conflict regions of a file as ``git merge`` leaves it: what a person must resolve, with context."""

from __future__ import annotations

import re
from collections.abc import Mapping

HUNK_CONTEXT_LINES = 3

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
    return relabel(text, labels) if labels else text


def relabel(text: str, labels: Mapping[str, str]) -> str:
    for old, new in labels.items():
        text = text.replace(old, new)
    return text
