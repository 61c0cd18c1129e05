"""The speculative verify pipeline (docs/architecture.md, step 4): the first K queued candidates verify at once.

Candidate i is verified on a *prediction*: ``main`` plus the merges of the candidates ahead of it,
each merge built with plumbing (``merge-tree`` + ``commit-tree``) in FIFO order. Landing stays the
workflow's job, one candidate at a time: when candidate i reaches the head, the workflow merges it
onto the real ``main``; if that is the predicted base, the merge is the predicted commit itself and
its verify (finished or still running) is the one joined, so what is pushed is exactly the verified
commit, compare-and-swapped on the ``main`` it was built on. Anything else (main moved, no
prediction) falls back to building and verifying on the spot: nothing unverified is ever pushed.

A prediction that stops holding (a candidate ahead fails its verify or conflicts, is superseded,
withdrawn or blocked) changes the chain: the verifies built on it are cancelled, which kills their
whole process group (:func:`integrator.verify.run`), and rebuilt on the new chain. Only the lease
holder runs a pipeline (the runner builds one per tenure and stops it when the lease goes); its
state is in memory, so a restart loses only verifies in flight. What people see (``status``, the
Discord status reply) is the ``pipeline`` setting (:func:`integrator.views.pipeline_view`) the holder writes on every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from integrator import git, notifications, outbox, queue, settings, verify, views
from integrator.config import Config
from integrator.errors import IntegratorError
from integrator.events import iso, utcnow
from integrator.lease import Lease, fenced
from integrator.store import Store

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (the base commit, the candidate's sha)
Message = Callable[[queue.Item], str]


@dataclass
class Run:
    """One candidate merged onto one predicted base, and the verify of that exact commit."""

    item: queue.Item
    base: str
    ahead: tuple[str, ...]  # slugs whose merges the base holds on top of main: the prediction
    tree: str | None = None
    merge_sha: str | None = None
    conflict: bool = False
    task: asyncio.Task[verify.Failure | None] | None = None
    started_at: str = ""
    started: float = field(default_factory=time.monotonic)
    joined: bool = False  # the workflow is landing it: never cancelled from here

    @property
    def failed(self) -> bool:
        """Known not to land on this base: it conflicts or its verify failed."""
        if self.conflict:
            return True
        task = self.task
        return task is not None and task.done() and not task.cancelled() and _result(task) is not None

    def state(self) -> str:
        if self.conflict:
            return "conflict"
        if self.task is None:
            return "building"
        if not self.task.done():
            return "verifying"
        return "failed" if self.failed else "passed"

    def as_dict(self, main: str, position: int) -> dict[str, Any]:
        return {
            "slug": self.item.slug,
            "sha": self.item.sha,
            "position": position,
            "state": self.state(),
            "base": self.base,
            "on_main": self.base == main,
            "ahead": list(self.ahead),
            "since": self.started_at,
        }


def _result(task: asyncio.Task[verify.Failure | None]) -> verify.Failure | None:
    if task.exception() is not None:
        # Raised (a refused sandbox, say): the workflow meets the same error when it lands this one.
        return None
    return task.result()


class Direct:
    """K = 1: build the merge and run its verify when the workflow asks, as one candidate at a time."""

    def __init__(self, cfg: Config, message: Message) -> None:
        self.cfg = cfg
        self.message = message

    async def commit(self, base: str, item: queue.Item, tree: str) -> str:
        return await git.commit_tree(
            self.cfg.repo,
            tree,
            _parents(self.cfg, base, item),
            self.message(item),
            timeout=self.cfg.git_timeout_s,
        )

    async def verify(
        self, base: str, item: queue.Item, merge_sha: str, secrets: Sequence[str]
    ) -> verify.Failure | None:
        return await verify.run(self.cfg, merge_sha, secrets=secrets)


def _parents(cfg: Config, base: str, item: queue.Item) -> list[str]:
    return [base, item.sha] if cfg.merge_strategy == "merge" else [base]


class Pipeline(Direct):
    """K > 1: speculative verifies of the first K candidates, reconciled with the queue as it changes."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        guard: Callable[[], Awaitable[Lease]],
        message: Message,
        secrets: Callable[[], list[str]],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(cfg, message)
        self.clock = clock
        self.store = store
        self.guard = guard
        self.secrets = secrets
        self.depth = cfg.pipeline_depth
        self.main: str | None = None
        self._runs: dict[Key, Run] = {}
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._shown: list[dict[str, Any]] | None = None

    # --- what the workflow calls while landing the head --------------------------------------------

    async def commit(self, base: str, item: queue.Item, tree: str) -> str:
        """The predicted merge when ``base`` is what it was predicted on (same tree), else a new one."""
        run = self._runs.get((base, item.sha))
        if run is not None and run.tree == tree and run.merge_sha is not None:
            run.joined = True
            return run.merge_sha
        return await super().commit(base, item, tree)

    async def verify(
        self, base: str, item: queue.Item, merge_sha: str, secrets: Sequence[str]
    ) -> verify.Failure | None:
        """Join the verify of exactly ``merge_sha`` (speculative, maybe finished), or run it now."""
        key = (base, item.sha)
        async with self._lock:
            run = self._runs.get(key)
            if run is None or run.merge_sha != merge_sha or run.task is None or run.task.cancelled():
                if run is not None:
                    await self._cancel([key])  # a verify of another commit: not what is landing
                run = Run(item, base, (), tree=None, merge_sha=merge_sha)
                self._runs[key] = run
                await self._start(run, secrets)
            run.joined = True
            task = run.task
        assert task is not None
        await self._show()
        try:
            return await asyncio.shield(task)
        finally:
            self._changed.set()

    # --- keeping the chain in step with the queue --------------------------------------------------

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        """Cancel every verify (their process groups die) and forget the predictions."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self.clear()

    async def clear(self) -> None:
        """Cancel every verify and forget the predictions (paused, or shadow mode: nothing will land)."""
        if not self._runs and self.main is None:
            return
        async with self._lock:
            self.main = None
            await self._cancel(list(self._runs))
        with contextlib.suppress(IntegratorError, sqlite3.Error):
            await self._show()

    async def _watch(self) -> None:
        """Re-reconcile when a verify ends or the queue may have changed (a supersede, a withdraw)."""
        while True:
            # asyncio.wait, not wait_for: on 3.11 a wait_for whose timeout fires as the task is
            # cancelled can swallow the cancellation, and stop() would wait forever.
            waiter = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({waiter}, timeout=1.0)
            finally:
                waiter.cancel()
            self._changed.clear()
            try:
                await self.reconcile(None)
            except IntegratorError as err:  # the lease went, or git failed: the runner's loop sees it too
                log.warning("event=pipeline_paused error=%s", err)
                return

    async def reconcile(self, main: str | None) -> None:
        """Make the runs match the chain: main + the merges of the live candidates ahead, K deep.

        ``main`` None: the main last seen (the watcher's re-reconcile); nothing when there is none.
        """
        async with self._lock:
            main = main or self.main
            if main is None:
                return
            items = await self.store.read(_chain_items)
            live = {i.id for i in items}
            for key, gone in list(self._runs.items()):
                if gone.joined and gone.item.id not in live:
                    # Landed or blocked a moment ago and the runner has not said which yet (landed()):
                    # a passed verify means the push is what main becomes.
                    if gone.merge_sha and gone.task and gone.task.done() and not gone.failed:
                        main = gone.merge_sha
                    self._runs.pop(key)
            self.main = main
            base, ahead = main, tuple[str, ...]()
            wanted: set[Key] = set()
            for item in items[: self.depth]:
                key = (base, item.sha)
                wanted.add(key)
                run = self._runs.get(key) or Run(item, base, ahead)
                run.ahead = ahead  # shown relative to today's main (those ahead land one by one)
                if key not in self._runs:
                    self._runs[key] = run
                    await self._build(run)
                if run.failed:
                    continue  # predicted blocked: those behind are built without it
                assert run.merge_sha is not None
                base, ahead = run.merge_sha, (*ahead, item.slug)
            stale = [k for k, r in self._runs.items() if k not in wanted and not r.joined]
            await self._cancel(stale)
        await self._show()

    async def _build(self, run: Run) -> None:
        cfg, t = self.cfg, self.cfg.git_timeout_s
        merge = await git.merge_tree(cfg.repo, run.base, run.item.sha, timeout=t)
        if not merge.clean:
            run.conflict = True  # the workflow blocks it with the evidence when it reaches the head
            return
        run.tree = merge.tree
        run.merge_sha = await super().commit(run.base, run.item, merge.tree)
        await self._start(run, self.secrets())

    async def _start(self, run: Run, secrets: Sequence[str]) -> None:
        lease = await self.guard()  # only the holder verifies
        assert run.merge_sha is not None
        run.started, run.started_at = time.monotonic(), iso(self.clock())
        run.task = asyncio.create_task(verify.run(self.cfg, run.merge_sha, secrets=secrets))
        run.task.add_done_callback(lambda _: self._changed.set())
        note = notifications.VerifyStarted(
            slug=run.item.slug,
            sha=run.item.sha,
            base=run.base,
            ahead=list(run.ahead),
            merge_sha=run.merge_sha,
            fencing=lease.fencing,
        )
        now = run.started_at

        def write(conn: sqlite3.Connection) -> None:
            outbox.add(conn, note, now=now)

        await self.store.write(fenced(lease, write), notify=False)

    async def _cancel(self, keys: list[Key]) -> None:
        tasks = []
        for key in keys:
            run = self._runs.pop(key)
            if run.task is not None and not run.task.done():
                run.task.cancel()
                tasks.append(run.task)
        await asyncio.gather(*tasks, return_exceptions=True)

    def landed(self, item: queue.Item, main: str | None) -> None:
        """The workflow recorded an outcome for ``item`` (``main``: what main is now, if it knows)."""
        for key in [k for k, r in self._runs.items() if r.item.id == item.id]:
            self._runs.pop(key)
        if main:
            self.main = main
        self._changed.set()

    async def _show(self) -> None:
        """Write what is verifying, on which base, since when, for ``status`` and the Discord reply."""
        main = self.main or ""
        ordered = sorted(self._runs.values(), key=lambda r: (r.item.order_at, r.item.id))
        shown = [r.as_dict(main, n + 1) for n, r in enumerate(ordered)]
        if shown == self._shown:
            return
        self._shown = shown

        def write(conn: sqlite3.Connection) -> None:
            settings.put(conn, views.PIPELINE_SETTING, {"depth": self.depth, "main": main, "runs": shown})

        await self.store.write(fenced(await self.guard(), write))


def _chain_items(conn: sqlite3.Connection) -> list[queue.Item]:
    """The item being landed, then the queued ones in FIFO order."""
    return queue.in_progress(conn) + queue.by_status(conn, "queued", limit=64)
