"""The verify sandbox: what the candidate's own code may see of the integrator (nothing).

The verify command is code from the candidate, so it runs with Linux user, mount and PID namespaces
(util-linux ``unshare``): an outer namespace where we are root hides every integrator path (tmpfs over
directories, ``/dev/null`` over files), mounts a fresh ``/proc`` (no view of the integrator's
process), optionally drops the network, then enters a nested user namespace as an ordinary user with
no capabilities: the hiding mounts belong to the outer namespace, so nothing inside can unmount them
(and a namespace it makes itself gets them locked). The environment is an allowlist.

``verify_isolation`` picks it: ``auto`` (namespaces when this machine allows them), ``namespaces``
(required) or ``none``. Without isolation, verify runs only if ``verify_accept_unisolated`` says so.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integrator.config import Config

# Runs as root of the outer user namespace. It holds the tree and home open, hides each path up to
# "--" (the verify work root among them, so no other verify's files show), mounts the two held
# directories back at their own paths, then drops to a nested user namespace as the caller's uid and
# execs the command there. Paths and programs are arguments, never code.
_SETUP = r"""
set -eu
mount_bin=$1 unshare_bin=$2 uid=$3 gid=$4 tree=$5 home=$6; shift 6
exec 3<"$tree" 4<"$home"
while [ "$1" != "--" ]; do
  if [ -d "$1" ]; then "$mount_bin" -t tmpfs -o size=64k,mode=0755 hidden "$1"
  else "$mount_bin" --bind /dev/null "$1"; fi
  shift
done
shift
mkdir -p "$tree" "$home"
"$mount_bin" --no-canonicalize --bind /proc/self/fd/3 "$tree"
"$mount_bin" --no-canonicalize --bind /proc/self/fd/4 "$home"
exec 3<&- 4<&-
cd "$tree"
exec "$unshare_bin" --user --map-user="$uid" --map-group="$gid" -- "$@"
"""
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class InForce:
    """The isolation verify gets under this config on this machine, and whether verify may run."""

    kind: str  # "namespaces" or "none"
    network: bool
    detail: str  # why, in one sentence
    risk_accepted: bool

    @property
    def allowed(self) -> bool:
        return self.kind == "namespaces" or self.risk_accepted

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "network": self.network,
            "detail": self.detail,
            "risk_accepted": self.risk_accepted,
            "verify_allowed": self.allowed,
        }


def _programs() -> tuple[str, str, str] | None:
    unshare, mount, sh = (shutil.which(p) for p in ("unshare", "mount", "sh"))
    if unshare is None or mount is None or sh is None:
        return None
    return unshare, mount, sh


@functools.lru_cache(maxsize=2)
def unavailable_reason(network: bool) -> str | None:
    """None when namespaces work here (probed once per process by hiding a path for real)."""
    programs = _programs()
    if programs is None:
        return "unshare, mount or sh is not installed"
    try:
        with tempfile.TemporaryDirectory(prefix="integrator-isolation-") as scratch:
            probe = Path(scratch)
            (probe / "tree").mkdir()
            (probe / "home").mkdir()
            argv = wrap(["true"], hidden=[probe], tree=probe / "tree", home=probe / "home", network=network)
            done = subprocess.run(
                argv,
                capture_output=True,
                timeout=20,
                env={"PATH": _DEFAULT_PATH},
            )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"user namespaces cannot be created here ({type(err).__name__})"
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        return "user/mount namespaces are not permitted here" + (f": {said[-1][:200]}" if said else "")
    return None


def in_force(cfg: Config) -> InForce:
    network = cfg.verify_network
    accepted = cfg.verify_accept_unisolated
    if cfg.verify_isolation == "none":
        return InForce("none", True, "verify_isolation = none in the config", accepted)
    reason = unavailable_reason(network)
    if reason is None:
        where = "network allowed" if network else "no network"
        return InForce("namespaces", network, f"user+mount+pid namespaces, {where}", accepted)
    # Asking for namespaces explicitly means no fallback, accepted risk or not.
    return InForce(
        "none", True, f"namespaces unavailable: {reason}", accepted and cfg.verify_isolation == "auto"
    )


def hidden_paths(cfg: Config, extra: Iterable[Path] = ()) -> list[Path]:
    """Every existing integrator path to hide, outermost only (a hidden directory covers what is inside)."""
    files = [cfg.credential_file, cfg.db, *(cfg.db.with_name(cfg.db.name + s) for s in ("-wal", "-shm"))]
    if cfg.config_path is not None:
        files.append(cfg.config_path)
    dirs = [cfg.state_dir, cfg.todos_dir, cfg.repo, *extra]
    found = {p.resolve() for p in [*files, *dirs] if p.exists()}
    covered = {p for p in found if p.is_dir()}
    return sorted(p for p in found if not any(d != p and d in p.parents for d in covered))


def environment(cfg: Config, home: Path) -> dict[str, str]:
    """The allowlist: PATH, LANG, HOME (a scratch directory), then the config's ``verify_env``."""
    env = {"PATH": os.environ.get("PATH", _DEFAULT_PATH), "HOME": str(home)}
    if "LANG" in os.environ:
        env["LANG"] = os.environ["LANG"]
    return {**env, **cfg.verify_env}


def wrap(
    command: Sequence[str], *, hidden: Sequence[Path], tree: Path, home: Path, network: bool
) -> list[str]:
    """The argv that runs ``command`` in ``tree`` inside the sandbox: ``hidden`` covered, ``tree`` and
    ``home`` (which may lie inside a hidden directory) visible and writable."""
    programs = _programs()
    assert programs is not None, "call unavailable_reason() first"
    unshare, mount, sh = programs
    outer = [unshare, "--user", "--map-root-user", "--mount", "--propagation", "private"]
    outer += ["--pid", "--fork", "--kill-child", "--mount-proc"]
    if not network:
        outer.append("--net")
    fixed = [mount, unshare, str(os.getuid()), str(os.getgid()), str(tree), str(home)]
    return [*outer, "--", sh, "-c", _SETUP, "sandbox", *fixed, *map(str, hidden), "--", *command]
