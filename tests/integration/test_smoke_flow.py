"""The shortest end-to-end path: three events, one run, one merge on main."""

from __future__ import annotations

from conftest import cli, push_feature, readiness_events

from integrator.config import Config
from integrator.sandbox import Sandbox
from integrator.service import Integrator


async def test_ready_candidate_lands_on_main_with_trailers(
    sandbox: Sandbox, config: Config, integ: Integrator
) -> None:
    feature = push_feature(sandbox, "feat-a", {"a.txt": "a\n"})
    report = await integ.emit(readiness_events(feature.slug, feature.branch, feature.sha), wait=True)
    assert report.stored == 3
    assert [c.status for c in report.candidates] == ["ready"]
    before = sandbox.main_sha()
    result = cli(config, "run", "--once")
    assert result.returncode == 0, result.stderr
    log = sandbox.main_log("%H %P")
    _merge, parents = log[0].split(" ", 1)
    assert parents.split() == [before, feature.sha]
    body = cli(config, "status", "--json")
    assert '"integration_completed"' in body.stdout
    message = sandbox.main_log("%B")
    assert f"Candidate-Sha: {feature.sha}" in "\n".join(message)
