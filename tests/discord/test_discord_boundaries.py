"""Import direction (docs/architecture.md): bot -> teleclaude.adapters -> integrator, and discord only at the edge."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_renderers_and_launcher_load_without_importing_discord() -> None:
    # discord_adapter (and the bot's Discord side: app, commands, launcher) import discord; what a
    # notification or a reply says is decided without it.
    code = (
        "import sys, teleclaude.adapters.discord_render, teleclaude.adapters.discord_replies, "
        "teleclaude.adapters.discord_format; "
        "print(sorted(m for m in sys.modules if m == 'discord' or m.startswith('discord.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_headless_bot_never_imports_discord() -> None:
    # Without a token the bot is the integrator plus console lines: no reason to pay for discord.py.
    code = (
        "import sys, bot.__main__, bot.runtime, bot.notify, bot.supervise; "
        "print(sorted(m for m in sys.modules if m == 'discord' or m.startswith('discord.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bot_modules_import_only_downward() -> None:
    # bot -> teleclaude.adapters -> integrator: nothing below the composition root imports it.
    offenders = {
        str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if n.split(".")[0] == "bot")
        for p in (ROOT / "teleclaude").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
