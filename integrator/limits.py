"""Explicit limits on what the integrator reads from outside: sizes, depth and numeric range.

Each limit is far above anything a real event needs and far below what would exhaust the process
(Python's recursion limit, its 4,300-digit int conversion limit, memory).
"""

from __future__ import annotations

import json
from typing import Any

from integrator.errors import InvalidInput

# One NDJSON batch on stdin, and one line of it.
MAX_BATCH_BYTES = 16 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024
MAX_BATCH_EVENTS = 10_000
# Nesting of one JSON value: an event is an object of scalars (depth 2); room for evidence-like maps.
MAX_JSON_DEPTH = 16
# Digits of one JSON integer: 2**63 has 19.
MAX_INT_DIGITS = 19
# A review round is a small count.
MAX_REVIEW_ROUND = 1_000_000
# How many problems one error line lists before it says how many more there are.
MAX_PROBLEMS_SHOWN = 10


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(text: str) -> Any:
    """``json.loads`` within the limits: raises ValueError with a one-line reason."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
        raise ValueError(f"longer than {MAX_LINE_BYTES} bytes")
    try:
        value = json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg} at column {err.colno})") from None
    if depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1) for child in item)
    return deepest


def one_line(head: str, problems: list[str]) -> str:
    """``head: p1; p2; … (and N more)``: an error is one line however many problems it names."""
    shown = "; ".join(p.replace("\n", " ") for p in problems[:MAX_PROBLEMS_SHOWN])
    more = len(problems) - MAX_PROBLEMS_SHOWN
    return f"{head}: {shown}" + (f" (and {more} more)" if more > 0 else "")


def utf8_text(raw: bytes, where: str) -> str:
    """Bytes from outside as text, or InvalidInput naming where the first bad byte is."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InvalidInput(f"{where}: not valid UTF-8 (line {line}, byte {err.start})") from None


def check_utf8(value: str, where: str) -> str:
    """A string decoded with surrogateescape (argv, environment) that held bytes that are not UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{where}: not valid UTF-8") from None
    return value
