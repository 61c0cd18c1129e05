"""The layering the code promises (docs/architecture.md), checked on the source itself.

No import cycle at module level, discord only at the edge, the bot and the Discord adapter on top of
the core's service (never the CLI beside them), and no SQL outside ``integrator/``: a new shortcut
fails here, naming the file and line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules(*packages: str) -> Iterator[tuple[str, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            yield name, ast.parse(path.read_text(encoding="utf-8"), filename=name)


def _imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
            # `from integrator import cli` imports the CLI too.
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


PACKAGES = ("integrator", "bot", "teleclaude")
OUTER = ("bot", "teleclaude")
SQL_CALLS = frozenset({"execute", "executemany", "executescript"})
STORE_CALLS = frozenset({"read", "write"})
MAX_MODULE_LINES = 600


def _paths() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]


def _module_name(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _top_level_imports(body: list[ast.stmt]) -> Iterator[str]:
    """What a module imports when it loads: not in a function, nor under ``if TYPE_CHECKING``."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _top_level_imports(node.orelse)
        else:  # class bodies, try/except, if/else, with: all run at load time
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.excepthandler):
                    yield from _top_level_imports(child.body)
            for field in ("body", "orelse", "finalbody"):
                inner = getattr(node, field, None)
                if isinstance(inner, list) and all(isinstance(n, ast.stmt) for n in inner):
                    yield from _top_level_imports(inner)


def _import_graph(trees: dict[str, ast.Module]) -> dict[str, set[str]]:
    """module -> the modules of the three packages it imports at load time (names that are not modules drop out)."""
    return {
        name: {m for m in _top_level_imports(tree.body) if m in trees and m != name}
        for name, tree in trees.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_at_module_level() -> None:
    trees = {_module_name(name): tree for name, tree in _modules(*PACKAGES)}
    assert _cycles(_import_graph(trees)) == []


def test_the_core_imports_no_discord() -> None:
    found = [
        f"{name}:{line} imports {module}"
        for name, tree in _modules("integrator")
        for line, module in _imported(tree)
        if module.split(".")[0] in ("discord", "teleclaude", "bot")
    ]
    assert found == []


def test_the_layout_checks_see_a_violation() -> None:
    """A cycle, a discord import and a module import hidden in a function or TYPE_CHECKING are told apart."""
    trees = {
        "a": ast.parse("from b import x\nimport discord.ui\n"),
        "b": ast.parse("try:\n    import x\nexcept ImportError:\n    import c\ndef f():\n    import a\n"),
        "c": ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import b\nimport a\n"),
        "d": ast.parse("import a\n"),
    }
    assert _cycles(_import_graph(trees)) == [["a", "b", "c"]]
    del trees["c"]
    assert _cycles(_import_graph(trees)) == []
    assert "discord.ui" in [m for _, m in _imported(ast.parse("import discord.ui\n"))]


def _calls(tree: ast.Module) -> Iterator[tuple[int, ast.Attribute]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node.lineno, node.func


def test_the_bot_and_the_adapter_import_no_cli() -> None:
    found = [
        f"{name}:{line} imports {module}"
        for name, tree in _modules(*OUTER)
        for line, module in _imported(tree)
        if module == "integrator.cli" or module.startswith("integrator.cli.")
    ]
    assert found == []


def test_no_sql_runs_outside_the_core() -> None:
    found = [
        f"{name}:{line} calls .{func.attr}()"
        for name, tree in _modules(*OUTER)
        for line, func in _calls(tree)
        if func.attr in SQL_CALLS
    ]
    assert found == []


def test_the_bot_runs_no_store_transaction_of_its_own() -> None:
    """A transaction is the service's (or the delivery API's) to compose, never the bot's."""
    found = [
        f"{name}:{line} calls store.{func.attr}()"
        for name, tree in _modules(*OUTER)
        for line, func in _calls(tree)
        if func.attr in STORE_CALLS
        and isinstance(func.value, ast.Attribute | ast.Name)
        and (func.value.attr if isinstance(func.value, ast.Attribute) else func.value.id) == "store"
    ]
    assert found == []


def test_the_checks_see_a_violation() -> None:
    """The scanners above find what they look for (an empty result must mean clean, not blind)."""
    tree = ast.parse(
        "from integrator.cli.render import short\nfrom integrator import cli\n"
        "conn.execute('SELECT 1')\nself.integ.store.write(fn)\n"
    )
    assert [m for _, m in _imported(tree) if m.startswith("integrator.cli")] == [
        "integrator.cli.render",
        "integrator.cli.render.short",
        "integrator.cli",
    ]
    assert sorted(f.attr for _, f in _calls(tree)) == ["execute", "write"]


def test_no_module_over_600_lines() -> None:
    """Small modules, one concept each: a module that grows past the limit is split by concept."""
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in _paths()}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}


# Each table belongs to the module of its concept: only that module (and the store's schema) reads it
# with FROM or writes it. Another module may JOIN it to read a row by key (a queue item carries its
# candidate's slug), never query or change it on its own.
TABLE_OWNERS = {
    "events": "integrator/journal.py",
    "candidates": "integrator/readiness.py",
    "queue": "integrator/queue.py",
    "transitions": "integrator/queue.py",
    "leases": "integrator/lease.py",
    "outbox": "integrator/outbox.py",
    "outbox_cursors": "integrator/outbox.py",
    "settings": "integrator/settings.py",
    "faults": "integrator/settings.py",
    "blocked_evidence": "integrator/blocked/records.py",
    "followups": "integrator/followup.py",
    "checkpoints": "integrator/checkpoint.py",
    "predictions": "integrator/shadow.py",
}
SCHEMA = "integrator/store.py"
_TABLE_USE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)")


def _tables_used(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield from ((node.lineno, m) for m in _TABLE_USE.findall(node.value))


def _schema_tables() -> set[str]:
    return set(
        re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", (ROOT / SCHEMA).read_text(encoding="utf-8"))
    )


def test_every_table_has_one_owner() -> None:
    assert set(TABLE_OWNERS) == _schema_tables()


def test_only_a_tables_owner_queries_or_changes_it() -> None:
    found = [
        f"{name}:{line} uses {table} (owned by {TABLE_OWNERS[table]})"
        for name, tree in _modules(*PACKAGES)
        if name != SCHEMA
        for line, table in _tables_used(tree)
        if table in TABLE_OWNERS and TABLE_OWNERS[table] != name
    ]
    assert found == []


def test_the_ownership_check_sees_a_violation() -> None:
    tree = ast.parse(
        'conn.execute("UPDATE queue SET x = 1")\nrows(conn, f"SELECT * FROM candidates WHERE {c}")\n'
        'one(conn, "SELECT q.id FROM checkpoints p JOIN queue q ON q.id = p.queue_id")\n'
    )
    assert sorted(t for _, t in _tables_used(tree)) == ["candidates", "checkpoints", "queue"]
