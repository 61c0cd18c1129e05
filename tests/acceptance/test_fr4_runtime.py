"""FR4: the serialized integration runtime, proven with real processes on real repositories."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from conftest import INTEGRATOR, cli, make_config, push_feature, wait_for
from helpers import emit_cli, merged_candidates, run_once, status

from integrator.config import Config
from integrator.sandbox import Sandbox


def test_fr4_1_one_integrator_holds_integration_main(tmp_path: Path, sandbox: Sandbox) -> None:
    """Two `integrator run` processes: one holds the lease, the other stands by and takes over when it dies."""
    cfg = make_config(tmp_path, sandbox, lease_ttl_s=1.5, lease_renew_s=0.3, idle_check_s=0.5)
    procs = [
        subprocess.Popen(
            [INTEGRATOR, "--config", str(cfg.config_path), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        lease = wait_for(lambda: status(cfg)["lease"])
        holder_pid = int(lease["holder"].rsplit(":", 1)[1])
        assert holder_pid in {p.pid for p in procs}
        first = next(p for p in procs if p.pid == holder_pid)
        other = next(p for p in procs if p.pid != holder_pid)
        first.send_signal(signal.SIGKILL)
        first.wait()
        taken = wait_for(
            lambda: (s := status(cfg)["lease"]) and s["holder"].endswith(f":{other.pid}") and s, timeout=10
        )
        assert taken["fencing"] > lease["fencing"]
        feature = push_feature(sandbox, "after-takeover", {"t.txt": "t\n"})
        emit_cli(cfg, feature)
        wait_for(lambda: merged_candidates(sandbox) == [feature.sha], timeout=15)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                assert p.wait(timeout=15) == 0


def test_fr4_2_fifo_by_readiness_timestamp(sandbox: Sandbox, config: Config) -> None:
    """Candidates land in `ready_at` order, not in the order their events arrived."""
    a = push_feature(sandbox, "third", {"a.txt": "a\n"})
    b = push_feature(sandbox, "first", {"b.txt": "b\n"})
    c = push_feature(sandbox, "second", {"c.txt": "c\n"})
    emit_cli(config, a, ready_at="2026-01-01T00:00:03.000003+00:00")
    emit_cli(config, b, ready_at="2026-01-01T00:00:01.000001+00:00")
    emit_cli(config, c, ready_at="2026-01-01T00:00:02.000002+00:00")
    assert [q["slug"] for q in status(config)["queue"]] == ["first", "second", "third"]
    run_once(config)
    assert merged_candidates(sandbox) == [b.sha, c.sha, a.sha]


def test_fr4_3_every_candidate_resolves_to_exactly_one_outcome(sandbox: Sandbox, config: Config) -> None:
    """Clean, conflicting and superseded candidates each end in one outcome; main holds only completed merges."""
    clean = push_feature(sandbox, "clean", {"shared.txt": "clean\n"})
    clash = push_feature(sandbox, "clash", {"shared.txt": "clash\n"})
    old = push_feature(sandbox, "renamed", {"r.txt": "1\n"})
    emit_cli(config, clean)
    emit_cli(config, clash)
    emit_cli(config, old)
    new_sha = old.worker.commit({"r.txt": "2\n"}, "newer")
    old.worker.push(old.branch)
    newer = type(old)(old.slug, old.branch, new_sha, old.worker)
    emit_cli(config, newer)
    run_once(config)
    history = json.loads(cli(config, "history", "--json", "--limit", "100").stdout)
    outcomes: dict[str, list[str]] = {}
    for event in history:
        outcomes.setdefault(event["payload"]["sha"], []).append(event["type"])
    assert outcomes[clean.sha] == ["integration_completed"]
    assert outcomes[clash.sha] == ["integration_blocked"]
    assert outcomes[old.sha] == ["superseded"]
    assert outcomes[newer.sha] == ["integration_completed"]
    assert sorted(merged_candidates(sandbox)) == sorted([clean.sha, newer.sha])
    # main never received a partial push: every first-parent commit after the seed is an integrator merge.
    parents = [p for p in sandbox.main_log("%P") if p.strip()]  # the seed commit has no parents
    assert [len(p.split()) for p in parents] == [2, 2]
    assert len(merged_candidates(sandbox)) == len(parents)
