"""Real states for the bot's tests: candidates made ready, integrated and blocked by the real workflow."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import BotEnv, Feature, push_feature, readiness_events

from integrator.runner import Runner
from integrator.sandbox import Sandbox


async def ready(env: BotEnv, slug: str, files: dict[str, str] | None = None) -> Feature:
    """A worker pushes ``slug`` and the three readiness events arrive: it is queued."""
    feature = push_feature(env.sandbox, slug, files or {f"{slug}.txt": f"{slug}\n"})
    report = await env.integ.emit(readiness_events(feature.slug, feature.branch, feature.sha), wait=True)
    assert [c.status for c in report.candidates if c.sha == feature.sha] == ["ready"], report.candidates
    return feature


async def waiting(env: BotEnv, slug: str) -> Feature:
    """Pushed and finalized, but nobody approved it: it waits, with a reason."""
    feature = push_feature(env.sandbox, slug, {f"{slug}.txt": f"{slug}\n"})
    finalize = [
        e for e in readiness_events(feature.slug, feature.branch, feature.sha) if e.type != "review_approved"
    ]
    await env.integ.emit(finalize, wait=True)
    return feature


async def drain(env: BotEnv) -> None:
    """The real integrator, once: takes the lease, works the queue empty, releases the lease."""
    await Runner(env.cfg, env.integ.store, holder="test-runner").run(asyncio.Event(), once=True)


def move_main(sandbox: Sandbox, files: dict[str, str], message: str = "main moves") -> str:
    """Someone lands a commit on main (no hooks in the sandbox remote)."""
    maintainer = sandbox.worker("maintainer")
    maintainer.start("main")
    sha = maintainer.commit(files, message)
    maintainer.push("main")
    return sha


async def blocked(env: BotEnv, slug: str) -> Feature:
    """``slug`` and main both change ``shared.txt``: the real workflow blocks it on a conflict."""
    feature = push_feature(env.sandbox, slug, {"shared.txt": f"{slug} wants this\n"})
    move_main(env.sandbox, {"shared.txt": "main wants this\n"}, "main: shared.txt")
    report = await env.integ.emit(readiness_events(feature.slug, feature.branch, feature.sha), wait=True)
    assert report.candidates[0].status == "ready"
    await drain(env)
    found = [b for b in await env.integ.blocked() if b.slug == slug]
    assert found and found[0].reason_code == "merge_conflict", found
    return feature


def status_of(candidates: list[dict[str, Any]], slug: str) -> str:
    return str(next(c["status"] for c in candidates if c["slug"] == slug))
