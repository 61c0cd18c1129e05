"""The authority package's shape: each module imports on its own (no cycle at module level), and
reading the live mode goes through the store's own modules, never through rollout governance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import integrator.authority

MODULES = sorted(
    p.stem for p in Path(integrator.authority.__file__).parent.glob("*.py") if p.stem != "__init__"
)


def _loaded_after_importing(module: str) -> list[str]:
    code = (
        "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('integrator'))))"
    )
    out = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def test_the_package_has_one_module_per_concept_each_under_400_lines() -> None:
    assert MODULES == ["credential", "hooks", "probes", "record", "remote", "spool", "transport", "verify"]
    for name in MODULES:
        path = Path(integrator.authority.__file__).with_name(f"{name}.py")
        assert len(path.read_text().splitlines()) < 400, path


@pytest.mark.parametrize("name", MODULES)
def test_each_module_imports_first_in_a_fresh_interpreter(name: str) -> None:
    loaded = _loaded_after_importing(f"integrator.authority.{name}")
    assert f"integrator.authority.{name}" in loaded
    # The mode is read through readonly + settings; the spool reaches the service only when the CLI
    # opens a store of its own, so none of these modules drags in rollout, the service or the runner.
    assert not [
        m for m in loaded if m.startswith(("integrator.rollout", "integrator.service", "integrator.runner"))
    ]


def test_live_mode_reads_through_the_read_only_opener_and_settings() -> None:
    loaded = _loaded_after_importing("integrator.authority.hooks")
    assert {"integrator.readonly", "integrator.settings"} <= set(loaded)
