"""A finding of ``integrator rollout validate``: severity, rule, file, line and one sentence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding, located in a file (and a 1-based line when the parser knows it)."""

    severity: Severity
    rule: str
    file: Path
    line: int | None
    message: str

    def render(self, base: Path | None = None) -> str:
        shown: Path | str = self.file
        if base is not None:
            try:
                shown = self.file.relative_to(base)
            except ValueError:
                shown = self.file
        where = f"{shown}:{self.line}" if self.line is not None else str(shown)
        return f"{where}: {self.severity} [{self.rule}]: {self.message}"


def error(rule: str, file: Path, line: int | None, message: str) -> Problem:
    return Problem("error", rule, file, line, message)


def warning(rule: str, file: Path, line: int | None, message: str) -> Problem:
    return Problem("warning", rule, file, line, message)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
