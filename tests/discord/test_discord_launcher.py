"""DiscordAdapter._build_session_launcher_view, hardened (seed requirement): every edge, clicked for real."""

from __future__ import annotations

import builtins
import re
from typing import Any

import pytest
from bots import AdapterClient
from conftest import MakeHarness
from harness import (
    ADMIN_ROLE_ID,
    OTHER_ROLE_ID,
    USER_ID,
    Harness,
    button_click_payload,
    button_row,
    components_of,
    member_payload,
    message_with_components,
    settle,
    text_channel,
)

from integrator.config import AgentConfig
from teleclaude.adapters.discord_adapter import (
    LAUNCH_TEMPLATE,
    DiscordAdapter,
    LaunchError,
    LaunchUser,
    agent_key,
)

CALLBACK = "POST /interactions/{webhook_id}/{webhook_token}/callback"
FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"
POST = "POST /channels/{channel_id}/messages"
ADMIN = member_payload(USER_ID, role_ids=[ADMIN_ROLE_ID])


def agents(n: int, **kw: Any) -> list[AgentConfig]:
    return [AgentConfig(name=f"agent-{i:02d}", command=["echo", str(i)], **kw) for i in range(n)]


class LaunchRecorder:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.error = error

    async def __call__(self, agent: AgentConfig, user: LaunchUser) -> str:
        self.calls.append((agent.name, user.id))
        if self.error is not None:
            raise self.error
        return f"Started {agent.name} (pid 123) in repo."


async def _posted(make: MakeHarness, adapter: DiscordAdapter) -> tuple[Harness, list[dict[str, Any]]]:
    """Post the launcher through a real client; return the request bodies."""
    h = await make(AdapterClient, adapter=adapter)
    await adapter.post_launcher(text_channel(h.client))
    bodies = [c.json for c in h.requests(POST)]
    h.recorder.clear()
    return h, bodies


async def test_zero_agents_post_a_clear_message_and_no_view(make: MakeHarness) -> None:
    adapter = DiscordAdapter(agents=agents(2, enabled=False))
    assert adapter._build_session_launcher_view() is None
    _, bodies = await _posted(make, adapter)
    assert [(b["content"], b["components"]) for b in bodies] == [
        ("No agents are enabled for the session launcher. Add one under [[discord.agents]].", [])
    ]


async def test_one_agent_one_persistent_button(make: MakeHarness) -> None:
    adapter = DiscordAdapter(agents=[AgentConfig(name="claude", command=["claude"])])
    view = adapter._build_session_launcher_view()
    assert view is not None and view.timeout is None and view.is_persistent()
    _, [body] = await _posted(make, adapter)
    assert body["content"] == "🚀 **Start a session**: tap an agent"
    assert components_of(body) == [
        [{"type": 2, "style": 2, "custom_id": "launch:claude", "label": "claude", "disabled": False}]
    ]


async def test_twenty_five_agents_fill_one_message_five_by_five(make: MakeHarness) -> None:
    _, [body] = await _posted(make, DiscordAdapter(agents=agents(25)))
    rows = components_of(body)
    assert [len(r) for r in rows] == [5, 5, 5, 5, 5]
    assert [b["custom_id"] for r in rows for b in r] == [f"launch:agent-{i:02d}" for i in range(25)]


async def test_more_agents_than_one_message_holds_are_split_over_messages(make: MakeHarness) -> None:
    adapter = DiscordAdapter(agents=[*agents(26), AgentConfig(name="off", command=["x"], enabled=False)])
    assert adapter.launcher_pages == 2
    assert adapter._build_session_launcher_view(page=2) is None
    _, bodies = await _posted(make, DiscordAdapter(agents=agents(53)))
    assert [b["content"] for b in bodies] == [
        "🚀 **Start a session**: tap an agent (1/3: agents 1–25)",
        "🚀 **Start a session**: tap an agent (2/3: agents 26–50)",
        "🚀 **Start a session**: tap an agent (3/3: agents 51–53)",
    ]
    counts = [sum(len(r) for r in components_of(b)) for b in bodies]
    assert counts == [25, 25, 3]
    ids = [b["custom_id"] for body in bodies for r in components_of(body) for b in r]
    assert len(set(ids)) == 53


ODD_NAMES = [
    "Claude Code (opus) — reviewer for the integration orchestrator rollout, long-context variant, EU region",
    "multi\nline\tname",
    "Клод ассистент",
    "x" * 200,
    "   ",
    "agent with `backticks` and **stars**",
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_get_a_short_stable_custom_id_and_a_fitting_label(name: str) -> None:
    adapter = DiscordAdapter(agents=[AgentConfig(name=name, command=["a"])])
    view = adapter._build_session_launcher_view()
    assert view is not None
    [button] = view.to_components()[0]["components"]
    assert len(button["custom_id"]) <= 100
    assert len(button["label"]) <= 80 and button["label"].strip()
    assert re.fullmatch(LAUNCH_TEMPLATE, button["custom_id"])
    assert button["custom_id"] == "launch:" + agent_key(
        name
    )  # same id in every process: restarts keep working
    assert "~" in agent_key(name)


def test_plain_names_stay_readable_and_derived_ids_never_collide_with_them() -> None:
    assert agent_key("claude-code_2.1") == "claude-code_2.1"
    derived = agent_key("claude code")
    assert derived.startswith("claude-code~") and len(derived) == len("claude-code~") + 10
    assert agent_key("claude code") != agent_key("claude  code")


async def test_click_starts_the_right_agent_even_with_an_odd_name(make: MakeHarness) -> None:
    launcher = LaunchRecorder()
    configured = [AgentConfig(name=n, command=["a"]) for n in ODD_NAMES[:4]]
    adapter = DiscordAdapter(agents=configured, launcher=launcher)
    h, [body] = await _posted(make, adapter)
    message = h.recorder.messages[max(h.recorder.messages)]
    target = components_of(body)[0][3]["custom_id"]
    await h.dispatch_interaction(button_click_payload(target, message, member=ADMIN))
    assert launcher.calls == [("x" * 200, USER_ID)]
    defer, followup = h.requests()
    assert (defer.key, defer.json) == (CALLBACK, {"type": 5, "data": {"flags": 64}})
    assert followup.key == FOLLOWUP
    assert followup.json["content"] == f"Started {'x' * 200} (pid 123) in repo."
    assert followup.json["flags"] == 64


async def test_click_on_a_removed_agent_gets_a_polite_ephemeral_reply(make: MakeHarness) -> None:
    launcher = LaunchRecorder()
    adapter = DiscordAdapter(agents=agents(2), launcher=launcher)
    h, _ = await _posted(make, adapter)
    message = h.recorder.messages[max(h.recorder.messages)]
    adapter.set_agents(agents(1))  # agent-01 removed by a config reload
    await h.dispatch_interaction(button_click_payload("launch:agent-01", message, member=ADMIN))
    assert launcher.calls == []
    [reply] = h.requests()
    assert reply.key == CALLBACK
    assert reply.json == {
        "type": 4,
        "data": {
            "content": "Sorry, **agent-01** is no longer available: it was removed from the launcher. "
            "Use the newest launcher message.",
            "flags": 64,
            "allowed_mentions": {"parse": []},
            "tts": False,
        },
    }


async def test_removed_agent_on_a_message_from_a_previous_process(make: MakeHarness) -> None:
    launcher = LaunchRecorder()
    h = await make(AdapterClient, adapter=DiscordAdapter(agents=agents(1), launcher=launcher))
    old = message_with_components([button_row(("launch:gone~0123456789", "Gone Agent"))])
    await h.dispatch_interaction(button_click_payload("launch:gone~0123456789", old, member=ADMIN))
    assert launcher.calls == []
    [reply] = h.requests()
    assert reply.json["data"]["content"].startswith("Sorry, **Gone Agent** is no longer available")
    assert reply.json["data"]["flags"] == 64


async def test_click_on_a_disabled_agent(make: MakeHarness) -> None:
    launcher = LaunchRecorder()
    adapter = DiscordAdapter(agents=agents(2), launcher=launcher)
    h, _ = await _posted(make, adapter)
    message = h.recorder.messages[max(h.recorder.messages)]
    adapter.set_agents([agents(1)[0], AgentConfig(name="agent-01", command=["x"], enabled=False)])
    await h.dispatch_interaction(button_click_payload("launch:agent-01", message, member=ADMIN))
    assert launcher.calls == []
    assert h.requests()[0].json["data"]["content"] == "Sorry, **agent-01** is disabled right now."


async def test_non_admin_cannot_start_a_session(make: MakeHarness) -> None:
    launcher = LaunchRecorder()
    h, _ = await _posted(make, DiscordAdapter(agents=agents(1), launcher=launcher))
    message = h.recorder.messages[max(h.recorder.messages)]
    other = member_payload(USER_ID + 1, role_ids=[OTHER_ROLE_ID])
    await h.dispatch_interaction(button_click_payload("launch:agent-00", message, member=other))
    assert launcher.calls == []
    assert h.requests()[0].json["data"] == {
        "content": "Sorry, only members with the **integrator-admin** role can start sessions.",
        "flags": 64,
        "allowed_mentions": {"parse": []},
        "tts": False,
    }


async def test_an_empty_launch_role_lets_every_member_launch(make: MakeHarness) -> None:
    launcher = LaunchRecorder()
    h, _ = await _posted(make, DiscordAdapter(agents=agents(1), launcher=launcher, launch_role=""))
    message = h.recorder.messages[max(h.recorder.messages)]
    other = member_payload(USER_ID + 1, role_ids=[OTHER_ROLE_ID])
    await h.dispatch_interaction(button_click_payload("launch:agent-00", message, member=other))
    assert launcher.calls == [("agent-00", USER_ID + 1)]


async def test_launch_failure_is_reported_to_the_user(make: MakeHarness) -> None:
    launcher = LaunchRecorder(error=LaunchError("command not found: claude"))
    h, _ = await _posted(make, DiscordAdapter(agents=agents(1), launcher=launcher))
    message = h.recorder.messages[max(h.recorder.messages)]
    await h.dispatch_interaction(button_click_payload("launch:agent-00", message, member=ADMIN))
    assert (
        h.requests(FOLLOWUP)[0].json["content"] == "Could not start **agent-00**: command not found: claude"
    )


async def test_registered_once_across_reconnects_and_answered_once(make: MakeHarness) -> None:
    launcher = LaunchRecorder()
    adapter = DiscordAdapter(agents=agents(1), launcher=launcher)
    h, _ = await _posted(make, adapter)
    client = h.client
    assert isinstance(client, AdapterClient)
    client.dispatch("ready")
    client.dispatch("ready")  # a reconnect
    await settle()
    assert client.ready_calls == 2
    assert client.dynamic_registrations == 1
    assert adapter.register_persistent(client) is False
    message = h.recorder.messages[max(h.recorder.messages)]
    await h.dispatch_interaction(button_click_payload("launch:agent-00", message, member=ADMIN))
    assert launcher.calls == [("agent-00", USER_ID)]
    assert [c.key for c in h.requests()] == [CALLBACK, FOLLOWUP]


def test_view_is_built_without_importing_discord(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = DiscordAdapter(agents=agents(30))
    real_import = builtins.__import__

    def guarded(
        name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        if level == 0 and (name == "discord" or name.startswith("discord.")):
            raise AssertionError(f"import of {name} at call time")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", guarded)
    views = [v for _, v in adapter.launcher_messages()]
    assert [len(v.children) for v in views if v is not None] == [25, 5]
