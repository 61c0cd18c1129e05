"""Shadow on a backport: a candidate whose change is already on main (not its sha) is predicted and
waits for the legacy merge, as cutover would merge it; it is not 'landed elsewhere' at first sight."""

from __future__ import annotations

from pathlib import Path

from conftest import emit_ready, make_config, push_feature
from test_shadow import legacy_commit, legacy_merge, predictions, report, shadow_once, statuses

from integrator.sandbox import Sandbox


async def test_a_backport_is_predicted_and_decided_by_its_legacy_merge(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, mode="shadow", gate={"min_decided": 1, "min_agreement": 0.95})
    backport = push_feature(sandbox, "backport", {"fix.txt": "fixed\n"})
    legacy_commit(sandbox, {"fix.txt": "fixed\n"}, "legacy: the same fix, straight on main")
    await emit_ready(cfg, backport)
    await shadow_once(cfg)

    found = predictions(cfg)
    assert found["backport"]["prediction"] == "would_integrate"
    assert found["backport"]["actual"] is None
    assert statuses(cfg)["backport"] == ("ready", "queued")

    landed = legacy_merge(sandbox, backport.sha)
    await shadow_once(cfg)
    found = predictions(cfg)
    assert found["backport"]["actual"] == "clean"
    assert found["backport"]["actual_detail"] == landed
    assert report(cfg)["decided"] == 1
