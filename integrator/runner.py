"""The drain loop (docs/architecture.md, *Processes*): take the lease, recover, drain, wait for work, stop cleanly.

A second runner on the same database stands by, reading only the lease row, and wakes when the
holder's lease expires: it takes over within the TTL plus one write after the holder dies, and at
once when the holder was a process on this host that is gone. The holder sleeps on the wake socket, not on
a database poll; an idle re-check every ``idle_check_s`` catches work no one announced (a legacy
push to main in shadow, a branch that finally moved).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from integrator import cutover, fence, git, pipeline, procs, readiness, recovery, settings
from integrator import lease as leases
from integrator.authority import spool
from integrator.authority.record import read_record
from integrator.authority.remote import RemotePaths
from integrator.backoff import Backoff
from integrator.config import Config
from integrator.errors import GitError, IntegratorError, LeaseLost, StoreBusy
from integrator.events import iso, utcnow
from integrator.phases import PhaseProbe
from integrator.service import Integrator
from integrator.shadow import ShadowDrain
from integrator.store import Store
from integrator.verify import refusal as verify_refusal
from integrator.wake import WakeListener, sleep_or_stop
from integrator.workflow import Workflow

log = logging.getLogger(__name__)

# After a faulted cycle (a failed fetch, a requeued candidate) the idle wait grows 1 s, 2 s, … 60 s.
FAULT_BACKOFF = Backoff(first_s=1.0, max_s=60.0)
# A standby wakes this long after the holder's expiry (clock granularity, the holder's last write).
EXPIRY_SLACK_S = 0.01
# How often a standby looks whether a holder on this host still runs (no database access).
LOCAL_HOLDER_CHECK_S = 1.0
# While another process holds the database's write lock (each try already waits the busy timeout).
BUSY_BACKOFF = Backoff(first_s=0.5, max_s=5.0)
# A holder that hit a locked database stands by this long before it tries to take the lease again.
STORE_BUSY_PAUSE_S = 1.0
# ``run --once`` gives up after this many faulted cycles in a row (the candidates stay queued).
ONCE_FAULT_LIMIT = 3


class Runner:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        *,
        holder: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        force_shadow: bool = False,
        probe: PhaseProbe | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        me = procs.Holder.me()
        self.holder = holder or me.name
        self.clock = clock
        self.force_shadow = force_shadow
        self.lease: leases.Lease | None = None
        self._lost = asyncio.Event()
        self.workflow = Workflow(cfg, store, self.guard, clock, probe=probe)
        self.shadow = ShadowDrain(cfg, store, clock)
        self.integ = Integrator(cfg, store, clock)
        self.faults_in_a_row = 0
        self.last_fault: str | None = None
        self.pipeline: pipeline.Pipeline | None = None
        self._started = me.stamp
        self._remote_fenced = False

    def _epoch(self) -> float:
        return self.clock().timestamp()

    # --- the lease ----------------------------------------------------------------------------------

    async def guard(self) -> leases.Lease:
        """Return our lease if it is still ours and unexpired; raise LeaseLost otherwise."""
        held = self.lease
        if held is None or self._lost.is_set():
            raise LeaseLost("this runner does not hold the lease")
        now = self._epoch()
        if not await self.store.read(lambda c: leases.is_held(c, held, now=now)):
            self._lost.set()
            raise LeaseLost(f"lease {held.key} lost (fencing {held.fencing})")
        return held

    async def _acquire(self, stop: asyncio.Event) -> leases.Lease | None:
        """Stand by until the lease can be taken; None once ``stop`` is set.

        A standby sleeps until the holder's lease expires (not a fixed poll), so a crashed holder is
        replaced within its TTL plus one write; it also looks again every ``ttl/4`` (at most 5 s) for
        a lease released early, and every second while the holder is a process on this host, which
        it can see die. A database locked by another process is waited out, never fatal.
        """
        ttl = self.cfg.lease_ttl_s
        interval = max(0.05, min(ttl / 4, 5.0))
        announced = False
        busy_tries = 0
        while not stop.is_set():
            now = self._epoch()
            try:
                got = await self.store.write(
                    functools.partial(
                        leases.acquire,
                        key=leases.MAIN_LEASE,
                        holder=self.holder,
                        now=now,
                        ttl=ttl,
                        started=self._started,
                    )
                )
                current = (
                    None
                    if got
                    else await self.store.read(lambda c: leases.holder_until(c, leases.MAIN_LEASE))
                )
            except StoreBusy as err:
                busy_wait = BUSY_BACKOFF.delay(busy_tries)
                busy_tries += 1
                log.warning(
                    "event=store_busy holder=%s retry_in_s=%.1f error=%s", self.holder, busy_wait, err
                )
                await sleep_or_stop(stop, busy_wait)
                continue
            busy_tries = 0
            if got is not None:
                return got
            if not announced:
                log.info("event=standby holder=%s lease=%s", self.holder, leases.MAIN_LEASE)
                announced = True
            wait = interval
            if current is not None:
                holder, expires_at = current
                wait = min(wait, max(0.0, expires_at - self._epoch()) + EXPIRY_SLACK_S)
                named = procs.Holder.from_name(holder)
                if named is not None and named.local:
                    wait = min(wait, LOCAL_HOLDER_CHECK_S)
            await sleep_or_stop(stop, wait)
        return None

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.lease_renew_s)
            held = self.lease
            if held is None:
                return
            renewed = await self._renew(held)
            if renewed is None:
                log.warning("event=lease_lost holder=%s", self.holder)
                self._lost.set()
                return
            self.lease = renewed

    async def _renew(self, held: leases.Lease) -> leases.Lease | None:
        """Renew, retrying through a locked database until the lease would have expired anyway."""
        pauses = BUSY_BACKOFF.pauses()
        while True:
            now = self._epoch()
            try:
                return await self.store.write(
                    functools.partial(leases.renew, lease=held, now=now, ttl=self.cfg.lease_ttl_s)
                )
            except StoreBusy as err:
                log.warning("event=store_busy holder=%s during=renew error=%s", self.holder, err)
                if self._epoch() >= held.expires_at:
                    return None
                await asyncio.sleep(next(pauses))

    # --- the loop -----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> None:
        """Hold the lease and drain until ``stop`` is set (or, with ``once``, until the queue is empty).

        A holder that loses its lease (frozen past the TTL, say) stops writing at once and, unless
        ``once``, goes back to standby: the new holder may die too.
        """
        while not stop.is_set():
            lost = await self._hold_and_drain(stop, once=once)
            if not lost or once:
                return
            self._lost.clear()
            log.info("event=standby_again holder=%s", self.holder)

    async def _hold_and_drain(self, stop: asyncio.Event, *, once: bool) -> bool:
        """One tenure as the lease holder; True if it ended because the lease was lost."""
        self.lease = await self._acquire(stop)
        if self.lease is None:
            return False
        self._remote_fenced = False
        log.info("event=lease_acquired holder=%s fencing=%d", self.holder, self.lease.fencing)
        renew = asyncio.create_task(self._renew_forever())
        listener = WakeListener(self.store.path)
        listener.start()
        direct = self._start_pipeline()
        busy: StoreBusy | None = None
        try:
            await self._drain(listener, stop, once=once)
        except LeaseLost as err:
            log.warning("event=lease_lost reason=%s", err)
            self._lost.set()
        except StoreBusy as err:
            # Another process sits on the write lock (frozen mid-transaction, say): give the lease up
            # and stand by; whoever takes it next recovers the candidate in flight from its checkpoint.
            log.warning("event=store_busy holder=%s during=drain error=%s", self.holder, err)
            busy = err
            self._lost.set()
        finally:
            await self._end_tenure(renew, listener, direct)
        if busy is not None:
            if once:
                raise busy
            await sleep_or_stop(stop, STORE_BUSY_PAUSE_S)
        return self._lost.is_set()

    def _start_pipeline(self) -> pipeline.Direct:
        """Start this tenure's verify pipeline (when configured); returns the verifier to restore."""
        direct = self.workflow.verifier
        if self.cfg.pipeline_depth > 1 and self.cfg.verify_command:
            # Per tenure: only the holder verifies, and a lost lease stops every verify with it.
            self.pipeline = pipeline.Pipeline(
                self.cfg, self.store, self.guard, self.workflow.message, self.workflow._secrets, self.clock
            )
            self.workflow.verifier = self.pipeline
            self.pipeline.start()
        return direct

    async def _drain(self, listener: WakeListener, stop: asyncio.Event, *, once: bool) -> None:
        # What a crashed predecessor left (a verify still running, its checkout, git lock files)
        # would fail every later step: cleared before anything else touches the clone.
        await recovery.recover_clone(self.cfg.repo, self.cfg.state_dir, timeout=self.cfg.git_timeout_s)
        await git.refresh_index(self.cfg.repo, timeout=self.cfg.git_timeout_s)
        await self.workflow.recover()
        while not stop.is_set() and not self._lost.is_set():
            worked = await self.cycle()
            await cutover.watchdog(self.integ)
            if worked:
                continue
            if once and (self.faults_in_a_row == 0 or self.faults_in_a_row >= ONCE_FAULT_LIMIT):
                return
            await self._idle(listener, stop)

    async def _end_tenure(
        self, renew: asyncio.Task[None], listener: WakeListener, direct: pipeline.Direct
    ) -> None:
        if self.pipeline is not None:
            await self.pipeline.stop()
            self.pipeline = None
            self.workflow.verifier = direct
        renew.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renew
        listener.stop()
        held = self.lease
        self.lease = None
        if held is not None:
            # Unreleased (still locked), it simply expires.
            with contextlib.suppress(StoreBusy):
                await self.store.write(lambda c: leases.release(c, held))

    async def _idle(self, listener: WakeListener, stop: asyncio.Event) -> None:
        faults = self.faults_in_a_row
        timeout = FAULT_BACKOFF.delay(faults - 1) if faults else self.cfg.idle_check_s
        waiter = asyncio.create_task(listener.wait(timeout))
        stopper = asyncio.create_task(stop.wait())
        lost = asyncio.create_task(self._lost.wait())
        try:
            await asyncio.wait({waiter, stopper, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, stopper, lost):
                task.cancel()
            await asyncio.gather(waiter, stopper, lost, return_exceptions=True)

    async def mode(self) -> str:
        if self.force_shadow:
            return "shadow"
        record = await self.store.read(lambda c: settings.mode(c, self.cfg.mode))
        return str(record["mode"])

    async def cycle(self) -> bool:
        """One pass: fetch, readiness check, then one candidate (cutover) or a prediction sweep (shadow).

        Returns True when it changed something, so the loop goes on without waiting.
        """
        cfg = self.cfg
        if not self._remote_fenced and await self.mode() == "cutover":
            try:
                await self._fence_remote()
            except GitError as err:
                await self._fault(err)  # nothing is pushed until the remote refuses older holders
                return False
        await self._ingest_spool()
        try:
            view = await readiness.observe(cfg.repo, cfg.remote, cfg.main_branch, timeout=cfg.git_timeout_s)
            await self.integ.check(view)
        except GitError as err:
            await self._fault(err)
            return False
        if await self.mode() == "shadow":
            if self.pipeline is not None:
                await self.pipeline.clear()
            lease = await self.guard()
            changed = await self.shadow.cycle(view, lease)
            await self._healthy()
            return changed > 0
        if await self.store.read(settings.pause_state) is not None:
            if self.pipeline is not None:
                await self.pipeline.clear()
            return False
        refusal = await verify_refusal(cfg)
        if refusal is not None:
            # Not a fault (no rollback): the operator fixes the sandbox or accepts the risk, then unpauses.
            log.warning("event=verify_refused reason=%s", refusal)
            await self.integ.pause(refusal, by="integrator")
            return False
        item = await self.workflow.take()
        if item is None:
            await self._healthy()
            return False
        if self.pipeline is not None and view.main_sha:
            try:
                await self.pipeline.reconcile(view.main_sha)
            except GitError as err:  # the head is built and verified by the workflow anyway
                log.warning("event=pipeline_reconcile_failed error=%s", err)
        outcome = await self.workflow.integrate(item, view)
        if self.pipeline is not None:
            self.pipeline.landed(item, outcome.detail.get("main_after"))
        log.info("event=outcome kind=%s slug=%s sha=%s", outcome.kind, item.slug, item.sha[:10])
        if outcome.kind == "requeued":
            self._bump_backoff(outcome.detail.get("error", "infrastructure fault"))
            return False
        self._reset_backoff()  # an outcome was recorded, which also cleared the stored fault streak
        return True

    async def _fence_remote(self) -> None:
        """Raise the remote's fencing number to ours before the tenure's first candidate (integrator.fence)."""
        lease = await self.guard()
        if fence.enforced(self.cfg):
            await fence.raise_remote(self.cfg, lease.fencing)
            log.info("event=remote_fenced holder=%s fencing=%d", self.holder, lease.fencing)
        self._remote_fenced = True

    async def _healthy(self) -> None:
        """A whole cycle worked: forget past faults (here and in the store, for status and the watchdog)."""
        if self.faults_in_a_row:
            await self.store.write(leases.fenced(await self.guard(), settings.clear_fault_streak))
        self._reset_backoff()

    async def _ingest_spool(self) -> None:
        """Safety net for the post-receive hook: store any branch_pushed it spooled but did not ingest."""
        bare = read_record(self.cfg).get("bare")
        if not bare or not any(RemotePaths(Path(bare)).spool.glob("*.push")):
            return
        try:
            # On this loop and through this runner's store: no second loop, no second connection.
            await spool.ingest_spool(self.cfg, bare, partial(spool.emit_events, self.integ))
        except IntegratorError as err:
            log.warning("event=spool_ingest_failed error=%s", err)

    async def _fault(self, err: Exception) -> None:
        now = iso(self.clock())

        def write(conn: sqlite3.Connection) -> int:
            return settings.record_fault(conn, "git", str(err), at=now)

        streak = await self.store.write(leases.fenced(await self.guard(), write))
        log.warning("event=fault streak=%d error=%s", streak, err)
        self._bump_backoff(err)

    def _bump_backoff(self, error: Exception | str) -> None:
        self.faults_in_a_row += 1
        self.last_fault = str(error)

    def _reset_backoff(self) -> None:
        self.faults_in_a_row = 0
