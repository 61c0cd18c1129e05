"""Reading a YAML file of ``todos/`` with the line of every key kept (ruamel's round-trip loader)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from integrator.rollout.problems import Problem, error


def line_of(node: Any, *, key: Any = None, index: int | None = None) -> int | None:
    """1-based line of a mapping key, a sequence item, or the node itself (ruamel round-trip data)."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is not None:
            return int(lc.key(key)[0]) + 1
        if index is not None:
            return int(lc.item(index)[0]) + 1
        return int(lc.line) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def line_at(node: Any, loc: Sequence[str | int], default: int | None) -> int | None:
    """The line of the value at ``loc`` under ``node``, or of the nearest key on the way that exists."""
    line = default
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            line = line_of(node, index=part) or line
            node = node[part]
        elif isinstance(node, dict) and part in node:
            line = line_of(node, key=part) or line
            node = node[part]
        else:
            break
    return line


def read_yaml(path: Path, problems: list[Problem]) -> tuple[bool, Any]:
    """Parse ``path``; on failure record why (with the parser's line) and return ``(False, None)``."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        problems.append(error("yaml", path, None, f"not UTF-8 text: {err}"))
        return False, None
    except OSError as err:
        problems.append(error("yaml", path, None, f"cannot read: {err.strerror or err}"))
        return False, None
    try:
        return True, YAML(typ="rt").load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(p for p in (err.context, err.problem) if p) or "syntax error"
        problems.append(error("yaml", path, line, f"not valid YAML: {what}"))
    except YAMLError as err:
        problems.append(error("yaml", path, None, f"not valid YAML: {err}"))
    return False, None
