"""The shipped launcher runs a real child: argument list, no shell, cwd = repository, detached."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from bots import AdapterClient
from conftest import MakeHarness
from harness import ADMIN_ROLE_ID, USER_ID, button_click_payload, member_payload, text_channel

from bot.launcher import SubprocessLauncher
from integrator.config import AgentConfig
from teleclaude.adapters.discord_adapter import DiscordAdapter, LaunchError

REPORT = (
    "import json, os, sys; json.dump({'cwd': os.getcwd(), 'argv': sys.argv[1:], 'sid': os.getsid(0),"
    " 'by': os.environ.get('TELECLAUDE_LAUNCHED_BY'), 'agent': os.environ.get('TELECLAUDE_AGENT'),"
    " 'token': os.environ.get('DISCORD_TOKEN')}, open('report.json', 'w'))"
)
USER = SimpleNamespace(id=USER_ID)


def reporter(name: str = "reporter", *extra: str) -> AgentConfig:
    return AgentConfig(name=name, command=[sys.executable, "-c", REPORT, *extra])


async def test_runs_the_argument_list_in_the_repository_detached_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "secret-token")
    launcher = SubprocessLauncher(tmp_path)
    text = await launcher(reporter("reporter", "a; touch pwned", "$(whoami)"), USER)
    assert await launcher.join(timeout=20)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["argv"] == ["a; touch pwned", "$(whoami)"], "arguments reach the child verbatim, no shell"
    assert not (tmp_path / "pwned").exists()
    assert Path(report["cwd"]).resolve() == tmp_path.resolve()
    assert report["sid"] != os.getsid(0), "the child runs in its own session"
    assert (report["by"], report["agent"], report["token"]) == (str(USER_ID), "reporter", None)
    assert text.startswith("Started reporter (pid ") and text.endswith(f") in {tmp_path.name}.")


async def test_output_goes_to_a_log_file_when_asked(tmp_path: Path) -> None:
    launcher = SubprocessLauncher(tmp_path, log_dir=tmp_path / "logs")
    await launcher(
        AgentConfig(name="talker", command=[sys.executable, "-c", "print('hello from agent')"]), USER
    )
    assert await launcher.join(timeout=20)
    assert (tmp_path / "logs" / "talker.log").read_text() == "hello from agent\n"


async def test_missing_command_and_missing_repository_are_launch_errors(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="command not found: no-such-agent-binary"):
        await SubprocessLauncher(tmp_path)(AgentConfig(name="x", command=["no-such-agent-binary"]), USER)
    with pytest.raises(LaunchError, match="does not exist"):
        await SubprocessLauncher(tmp_path / "nope")(reporter(), USER)


async def test_a_click_starts_a_real_process(make: MakeHarness, tmp_path: Path) -> None:
    launcher = SubprocessLauncher(tmp_path)
    adapter = DiscordAdapter(agents=[reporter()], launcher=launcher)
    h = await make(AdapterClient, adapter=adapter)
    [sent] = await adapter.post_launcher(text_channel(h.client))
    h.recorder.clear()
    member = member_payload(USER_ID, role_ids=[ADMIN_ROLE_ID])
    await h.dispatch_interaction(
        button_click_payload("launch:reporter", h.recorder.messages[sent.id], member=member)
    )
    assert await launcher.join(timeout=20)
    assert json.loads((tmp_path / "report.json").read_text())["by"] == str(USER_ID)
    followup = h.requests("POST /webhooks/{webhook_id}/{webhook_token}")[0]
    assert followup.json["content"].startswith("Started reporter (pid ")
