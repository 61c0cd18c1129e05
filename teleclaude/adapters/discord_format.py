"""Discord's message limits and the text helpers that keep every rendered message inside them.

Plain string work, no ``discord`` import: the renderers build on it and tests can check it as data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

CONTENT_MAX = 2000
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FIELDS_MAX = 25
FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000

SHA_SHOWN = 10
COLOR_BLOCKED = 0xE74C3C
# A field squeezed below this many characters says nothing useful; the file carries it instead.
MIN_USEFUL_FIELD = 120


# ------------------------------------------------------------------------------------ text helpers
def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


_MARKDOWN_RE = re.compile(r"([\\*_~|`>])")


def escape(text: object) -> str:
    """Free text (reasons, names) shown as typed, not as Discord markdown."""
    return _MARKDOWN_RE.sub(r"\\\1", str(text))


def code(text: object) -> str:
    """Inline code; a backtick inside would end the span early, so it is swapped for a look-alike."""
    s = " ".join(str(text).split()) or " "
    return "`" + s.replace("`", "ˋ") + "`"


# A name (branch, path) longer than this is shortened on its own, in the middle, so the message around
# it (the sha after it, the closing backtick) never has to be clipped.
NAME_SHOWN = 100


def clip_middle(text: str, limit: int = NAME_SHOWN) -> str:
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def code_name(text: object, limit: int = NAME_SHOWN) -> str:
    """A branch or path as inline code, shortened in the middle when long."""
    return code(clip_middle(" ".join(str(text).split()), limit))


_CODE_SPAN_RE = re.compile(r"`([^`\n]+)`")


def markdown_with_code(text: str) -> str:
    """Free text whose ``backticked`` commands stay code spans: the rest is escaped, the spans are not."""
    out: list[str] = []
    last = 0
    for match in _CODE_SPAN_RE.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(code(match.group(1)))
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def short(sha: object) -> str:
    return str(sha)[:SHA_SHOWN]


def code_block(text: str, limit: int, *, lang: str = "", keep_tail: bool = False) -> tuple[str, bool]:
    """``text`` fenced to at most ``limit`` characters; returns (block, whether it was cut)."""
    body = text.replace("```", "``\u200b`").rstrip("\n") or " "
    head, tail = f"```{lang}\n", "\n```"
    room = limit - len(head) - len(tail)
    if len(body) <= room:
        return head + body + tail, False
    note = "… (truncated)"
    room -= len(note) + 1
    if room <= 0:
        return clip(head + note + tail, limit), True
    if keep_tail:
        cut = body[len(body) - room :]
        return f"{head}{note}\n{cut}{tail}", True
    return f"{head}{body[:room]}\n{note}{tail}", True


def discord_time(value: object, style: str = "R") -> str:
    """A Discord timestamp tag: each reader sees it in their own time zone (or relative)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return escape(value)
    if moment.tzinfo is None:
        return escape(value)
    return f"<t:{int(moment.timestamp())}:{style}>"


def human_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{int(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ----------------------------------------------------------------------------------- embed budget
class EmbedBuilder:
    """Adds fields in priority order while keeping every Discord embed limit; remembers what it cut."""

    def __init__(self, title: str, description: str, *, color: int, footer_reserve: int) -> None:
        self.title = clip(title, TITLE_MAX)
        self.description = clip(description, DESCRIPTION_MAX)
        self.color = color
        self.fields: list[dict[str, Any]] = []
        self.cut = self.title != title or self.description != description
        self.used = len(self.title) + len(self.description) + footer_reserve

    def add(
        self,
        name: str,
        value: Callable[[int], tuple[str, bool]],
        *,
        inline: bool = False,
        min_useful: int = MIN_USEFUL_FIELD,
    ) -> None:
        """``value(limit)`` returns the text (at most ``limit`` chars) and whether it had to cut."""
        shown_name = clip(name, FIELD_NAME_MAX)
        room = min(FIELD_VALUE_MAX, EMBED_TOTAL_MAX - self.used - len(shown_name))
        if len(self.fields) >= FIELDS_MAX or room < min_useful:
            self.cut = True
            return
        text, was_cut = value(room)
        self.cut = self.cut or was_cut or shown_name != name
        self.fields.append({"name": shown_name, "value": text, "inline": inline})
        self.used += len(shown_name) + len(text)

    def add_text(self, name: str, text: str, *, inline: bool = False) -> None:
        self.add(
            name,
            lambda limit: (clip(text, limit), len(text) > limit),
            inline=inline,
            min_useful=min(len(text), 40),
        )

    def build(self, footer: str | None) -> dict[str, Any]:
        embed: dict[str, Any] = {"title": self.title, "description": self.description, "color": self.color}
        if self.fields:
            embed["fields"] = self.fields
        if footer:
            embed["footer"] = {"text": clip(footer, FOOTER_MAX)}
        return embed
