"""``authority verify``: run every probe from a scratch clone, report what the remote really did, and put
main back exactly as it was. The result is recorded in ``authority.json``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from integrator import git
from integrator.authority.credential import read_credential
from integrator.authority.probes import Probe, ProbeRun, lookalike_refs, probe_list
from integrator.authority.record import record_verify
from integrator.authority.remote import MODES, ZERO_SHA, read_remote_mode, stderr_reason
from integrator.authority.transport import Transport, classify_remote
from integrator.config import Config
from integrator.errors import IntegratorError, InvalidInput
from integrator.events import iso, utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class VerifyRow:
    variant: str
    expected: str
    actual: str
    ok: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "expected": self.expected,
            "actual": self.actual,
            "ok": self.ok,
            "note": self.note,
        }


@dataclass(frozen=True)
class VerifyReport:
    transport: Transport
    mode: str
    mode_source: str
    main: str
    rows: tuple[VerifyRow, ...]
    verified_at: datetime

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def failures(self) -> list[str]:
        return [row.variant for row in self.rows if not row.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "remote": self.transport.shown,
            "transport": self.transport.scheme,
            "transport_kind": self.transport.kind,
            "boundary": self.transport.server,
            "assessment": self.transport.describe(),
            "mode": self.mode,
            "mode_source": self.mode_source,
            "main": self.main,
            "main_restored": True,
            "ok": self.ok,
            "failures": self.failures,
            "verified_at": iso(self.verified_at),
            "variants": [row.as_dict() for row in self.rows],
        }


def _observe(v: ProbeRun, probe: Probe, result: git.Result, heads: dict[str, str]) -> tuple[str, str]:
    """What the probe did to the remote: allowed, rejected (by the hook), or refused (otherwise)."""
    main_now = heads.get(v.main_ref)
    moved = {
        "main": main_now not in (None, v.main_before),
        "main-deleted": main_now is None,
        "feature": heads.get(f"{v.prefix}feature") == v.probe_sha,
        "head": "refs/heads/HEAD" in heads and not v.head_existed,
        "ref": probe.ref in heads and probe.ref not in v.refs_before,
    }
    if probe.effect == "atomic":
        side = heads.get(f"{v.prefix}atomic") == v.probe_sha
        main_moved = main_now != v.main_before
        if side != main_moved:
            return "partial", "one ref moved without the other"
        effect = side
    else:
        effect = moved[probe.effect]
    stderr_tail = stderr_reason(result.stderr)
    if effect:
        return "allowed", "" if result.ok else f"push reported: {stderr_tail}"
    if "pre-receive hook declined" in result.stderr:
        return "rejected", ""
    if result.ok:
        return "no effect", "push succeeded but nothing moved"
    return "refused", stderr_tail


def _judge(probe: Probe, actual: str) -> bool:
    if probe.expect == "local-only bypass":
        return actual in ("allowed (hooks bypassed)", "rejected", "refused")
    if actual == "refused by git":
        # Nothing moved and the hook was not what stopped it: fine wherever the hook would allow it.
        return probe.expect == "allowed"
    if probe.any_refusal_holds and actual == "refused":
        # Nothing moved and the server refused the request itself (a server transport refuses a
        # client-chosen receive-pack): that holds in either mode.
        return True
    return actual == probe.expect


def _run_probe(v: ProbeRun, probe: Probe) -> VerifyRow:
    if probe.expect == "skipped":
        return VerifyRow(probe.name, "skipped", "skipped", True, probe.note)
    if probe.prepare is not None:
        probe.prepare()
    result = v.run(list(probe.args), env=probe.env, check=False)
    heads = v.remote_heads()
    actual, detail = _observe(v, probe, result, heads)
    if probe.expect == "local-only bypass" and actual == "allowed":
        actual = "allowed (hooks bypassed)"
    if actual == "refused" and probe.git_refusal and probe.git_refusal[0] in result.stderr:
        actual, detail = "refused by git", probe.git_refusal[1]
    ok = _judge(probe, actual)
    _restore_main(v, heads)
    note = "; ".join(part for part in (probe.note, detail) if part)
    return VerifyRow(probe.name, probe.expect, actual, ok, note)


def _restore_main(v: ProbeRun, heads: dict[str, str]) -> None:
    current = heads.get(v.main_ref)
    if current == v.main_before:
        return
    result = v.integrator_push(f"{v.main_before}:{v.main_ref}", f"{v.main_ref}:{current or ''}")
    after = v.remote_heads().get(v.main_ref)
    if after != v.main_before and v.transport.bare is not None:
        # The credentialed push was refused (hooks missing, receive.denyNonFastForwards, ...); the
        # bare repository is at hand, so put main back directly, still compare-and-swap.
        v.run(
            [
                "update-ref",
                "-m",
                "integrator verify: restore main",
                v.main_ref,
                v.main_before,
                after or ZERO_SHA,
            ],
            cwd=v.transport.bare,
            check=False,
        )
        after = v.remote_heads().get(v.main_ref)
    if after != v.main_before:
        last = stderr_reason(result.stderr) or "no message"
        raise IntegratorError(
            f"verify could not put {v.main_ref} back to {v.main_before} "
            f"(it is at {after or 'nothing'}): {last}. Restore it with the integrator's credential"
        )


def _integrator_row(v: ProbeRun) -> VerifyRow:
    """The integrator's own credentialed push of main must pass in every mode."""
    result = v.integrator_push(f"{v.probe_sha}:{v.main_ref}", f"{v.main_ref}:{v.main_before}")
    heads = v.remote_heads()
    actual, detail = _observe(v, Probe("integrator", (), "allowed"), result, heads)
    _restore_main(v, heads)
    return VerifyRow(
        "integrator's push (credential as push option)",
        "allowed",
        actual,
        actual == "allowed",
        detail or "force-with-lease, credential passed through the environment, never argv",
    )


def _run_probes(v: ProbeRun, *, can_restore: bool) -> list[VerifyRow]:
    probes = probe_list(v)
    if can_restore:
        return [_run_probe(v, probe) for probe in probes]
    # Without a working credentialed push (and no bare repository at hand) a probe that got through
    # could not be undone: report instead of risking main.
    why = "not run: the integrator's own push failed, so main could not be put back after a probe"
    return [VerifyRow(probe.name, probe.expect, "not run", False, why) for probe in probes]


def _prepare_scratch(v: ProbeRun) -> None:
    v.run(["clone", "--quiet", "--no-checkout", v.transport.url, str(v.scratch)], cwd=v.tmp)
    found = v.run(
        ["rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{v.cfg.main_branch}^{{commit}}"],
        check=False,
    )
    if not found.ok:
        raise InvalidInput(f"remote: {v.transport.shown} has no {v.main_ref}; verify needs one to probe")
    v.main_before = found.stdout.strip()
    tree = f"{v.main_before}^{{tree}}"
    message = f"integrator authority verify probe {v.run_id} (never kept)"
    v.probe_sha = v.run(["commit-tree", "-p", v.main_before, "-m", message, tree]).stdout.strip()
    v.orphan_sha = v.run(["commit-tree", "-m", message + ", unrelated history", tree]).stdout.strip()
    v.run(["update-ref", f"refs/heads/{v.cfg.main_branch}", v.probe_sha])
    v.run(["symbolic-ref", "HEAD", f"refs/heads/{v.cfg.main_branch}"])
    v.refs_before = frozenset(v.remote_heads())
    v.head_existed = "refs/heads/HEAD" in v.refs_before


def _cleanup(v: ProbeRun) -> None:
    """Leave the remote as verify found it: alias gone, main back, probe branches deleted."""
    if v.alias is not None and v.transport.bare is not None:
        v.run(["symbolic-ref", "--delete", v.alias], cwd=v.transport.bare, check=False)
    heads = v.remote_heads()
    _restore_main(v, heads)
    leftovers = [ref for ref in heads if ref.startswith(v.prefix)]
    if "refs/heads/HEAD" in heads and not v.head_existed:
        leftovers.append("refs/heads/HEAD")
    # Deleting a ref named like main is allowed without the credential (it is the clean-up).
    leftovers += [r for r in heads if r in lookalike_refs(v) and r not in v.refs_before]
    if leftovers:
        v.run(
            ["push", "--quiet", "-o", v.marker, v.transport.url, *(f":{ref}" for ref in leftovers)],
            check=False,
        )
    remaining = [ref for ref in v.remote_heads() if ref in leftovers]
    if remaining:
        log.warning("verify left probe refs behind: %s", " ".join(remaining))


def _verify_mode(transport: Transport, cfg: Config, requested: str | None) -> tuple[str, str]:
    if transport.bare is None:
        return (
            requested or cfg.mode,
            "--mode" if requested else "config (the remote's mode file is not reachable)",
        )
    found = read_remote_mode(transport.bare)
    actual = found or "cutover"
    if requested is not None and requested != actual:
        raise InvalidInput(
            f"--mode: the remote enforces {actual}, not {requested}; change it with cutover/rollback"
        )
    return (
        actual,
        "remote mode file" if found else "remote mode file missing or unreadable: the hook fails closed",
    )


def verify(cfg: Config, remote: str, *, mode: str | None = None, clock: Clock = utcnow) -> VerifyReport:
    """Probe ``remote`` with every known bypass and leave main exactly as it was."""
    if mode is not None and mode not in MODES:
        raise InvalidInput(f"--mode: {mode!r} is not one of {', '.join(MODES)}")
    transport = classify_remote(remote, cfg)
    credential = read_credential(cfg)
    chosen, source = _verify_mode(transport, cfg, mode)
    with tempfile.TemporaryDirectory(prefix="integrator-verify-") as tmp:
        v = ProbeRun(cfg=cfg, transport=transport, mode=chosen, credential=credential, tmp=Path(tmp))
        _prepare_scratch(v)
        rows: list[VerifyRow] = []
        try:
            rows.append(_integrator_row(v))
            rows.extend(_run_probes(v, can_restore=rows[0].ok or transport.bare is not None))
        finally:
            _cleanup(v)
    report = VerifyReport(transport, chosen, source, v.main_before, tuple(rows), clock())
    record_verify(
        cfg,
        at=report.verified_at,
        mode=chosen,
        remote=transport.shown,
        transport=transport.scheme,
        transport_kind=transport.kind,
        boundary=transport.server,
        failures=report.failures,
    )
    return report
