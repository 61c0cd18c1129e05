"""Fencing that reaches the remote (docs/authority.md): the lease's number travels with each push of main.

The remote's pre-receive hook keeps the highest fencing number it has seen and refuses a push of
main that carries a lower one. A new holder raises that number before any other step of its first
candidate, by force-pushing ``refs/integrator/fence`` to a commit of its own with the number as a
push option; so a holder that was paused past its TTL and resumes finds its push refused by the
remote itself, even when compare-and-swap alone would let it through (main has not moved yet).

Only a remote with the integrator's hooks enforces this (``integrator hooks install``). Elsewhere
(shadow without hooks, a remote the integrator does not control) compare-and-swap is the guard.
"""

from __future__ import annotations

from integrator import git
from integrator.authority.credential import TOKEN_OPTION, push_options_env, read_credential
from integrator.authority.record import read_record
from integrator.config import Config
from integrator.errors import GitError, LeaseLost

FENCE_REF = "refs/integrator/fence"
FENCING_OPTION = "integrator-fencing"
# The hook's refusal carries this word, so the refused holder knows it lost its lease.
REFUSAL = "integrator-fencing-refused"
# Fixed dates: one fence commit per number, the same on every host.
_EPOCH = "1970-01-01T00:00:00+0000"


def enforced(cfg: Config) -> bool:
    """True when the integrator installed its hooks on a remote (so the remote keeps the fence)."""
    return bool(read_record(cfg).get("bare"))


def main_push_env(cfg: Config, fencing: int) -> dict[str, str]:
    """The push options of a push of main: the credential and the lease's fencing number."""
    return push_options_env([f"{TOKEN_OPTION}={read_credential(cfg)}", f"{FENCING_OPTION}={fencing}"])


def refused(push_output: str) -> bool:
    return REFUSAL in push_output


async def raise_remote(cfg: Config, fencing: int) -> None:
    """Make the remote refuse every push of main with a fencing number below ``fencing``.

    Raises LeaseLost if the remote already saw a higher number (a newer holder exists), GitError
    when the remote cannot be reached or refuses: then nothing may be pushed yet (the runner
    counts it as an infrastructure fault and retries).
    """
    repo, t = cfg.repo, cfg.git_timeout_s
    tree = await git.empty_tree(repo, timeout=t)
    commit = await git.commit_tree(repo, tree, [], f"integrator fence {fencing}\n", timeout=t, when=_EPOCH)
    res = await git.push_ref(repo, cfg.remote, commit, FENCE_REF, timeout=t, env=main_push_env(cfg, fencing))
    if res.ok:
        return
    text = res.stdout + res.stderr
    if refused(text):
        raise LeaseLost(f"the remote has seen a fencing number above {fencing}: a newer holder exists")
    raise GitError(
        f"raising the remote's fencing number to {fencing} failed: {text.strip().splitlines()[-1] if text.strip() else res.returncode}",
        command=["git", *res.args],
        stderr=text,
    )
