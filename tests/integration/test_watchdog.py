"""The watchdog's edges: no stall alarm in shadow, and a failed automatic rollback never kills the runner."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from conftest import make_config, push_feature, readiness_events

from integrator import cutover
from integrator.authority.record import update_record
from integrator.events import utcnow
from integrator.sandbox import Sandbox
from integrator.service import Integrator


def outbox_kinds(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT kind FROM outbox ORDER BY id")]
    finally:
        conn.close()


async def queued_candidate(integ: Integrator, sandbox: Sandbox) -> None:
    feature = push_feature(sandbox, "waits", {"w.txt": "w\n"})
    report = await integ.emit(readiness_events(feature.slug, feature.branch, feature.sha), wait=True)
    assert [c.status for c in report.candidates] == ["ready"]


async def test_no_stall_alarm_in_shadow(tmp_path: Path, sandbox: Sandbox) -> None:
    cfg = make_config(tmp_path, sandbox, mode="shadow", stall_limit_s=60)
    async with await Integrator.open(cfg) as integ:
        await queued_candidate(integ, sandbox)
        later = Integrator(cfg, integ.store, clock=lambda: utcnow() + timedelta(hours=2))
        assert await cutover.watchdog(later) is None
    assert "stall_alarm" not in outbox_kinds(cfg.db)


async def test_a_stall_in_cutover_alarms_and_a_failed_rollback_is_survived(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox, mode="cutover", stall_limit_s=60)
    gone = tmp_path / "moved-away.git"
    update_record(cfg, {"bare": str(gone), "installed_at": "2026-01-01T00:00:00+00:00"})
    async with await Integrator.open(cfg) as integ:
        await queued_candidate(integ, sandbox)
        later = Integrator(cfg, integ.store, clock=lambda: utcnow() + timedelta(hours=2))
        assert await cutover.watchdog(later) is None  # the rollback failed: logged, not raised
        assert (await integ.status()).mode == "cutover"
    assert outbox_kinds(cfg.db).count("stall_alarm") == 1
    assert not gone.exists()  # no mode file was written into a made-up directory
