"""What unblocks a candidate, per reason code: one entry per code writes the fix once.

Each entry builds the fix's commands once and returns both forms a person reads: the one-sentence
next action (events, Discord, the todo's heading) and the checklist of the follow-up plan. The
closing "confirm it integrated" step is the same for every code and is added here.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from integrator.blocked.text import code_span
from integrator.events import check_sha
from integrator.reasons import ReasonCode, check_reason_code


@dataclass(frozen=True)
class Step:
    """One checklist item of a follow-up plan; ``commands`` are shell lines to run in order."""

    text: str
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class Remedy:
    action: str  # one sentence, the commands in code spans
    steps: tuple[Step, ...]  # the checklist up to (not including) the shared confirm step


def _q(value: str) -> str:
    return shlex.quote(value)


def emit_command(slug: str, branch: str, sha: str = '"$(git rev-parse HEAD)"') -> str:
    """The command a worker runs to announce a new candidate for ``slug``."""
    return (
        f'integrator emit finalize_ready --slug {_q(slug)} --branch {_q(branch)} --sha {sha} --worker "$USER"'
    )


def update_command(branch: str, *, remote: str, main_branch: str) -> str:
    return f"git fetch {_q(remote)} && git switch {_q(branch)} && git merge {_q(f'{remote}/{main_branch}')}"


def resume_command(slug: str) -> str:
    return f"integrator resume {_q(slug)}"


def _is_sha(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        check_sha(value)
    except ValueError:
        return False
    return True


def _path_list(paths: Sequence[str], limit: int) -> str:
    shown = ", ".join(code_span(p) for p in paths[:limit])
    if len(paths) > limit:
        shown += f" (+{len(paths) - limit} more)"
    return shown or "the conflicted files"


@dataclass(frozen=True)
class Case:
    """The blocked candidate a remedy is written for, and the commands every remedy draws on."""

    slug: str
    branch: str
    evidence: dict[str, Any]
    remote: str
    main_branch: str

    @property
    def push(self) -> str:
        return f"git push {_q(self.remote)} {_q(self.branch)}"

    @property
    def update(self) -> str:
        return update_command(self.branch, remote=self.remote, main_branch=self.main_branch)

    @property
    def resume(self) -> str:
        return resume_command(self.slug)

    @property
    def ls_remote(self) -> str:
        return f"git ls-remote {_q(self.remote)} {_q(self.main_branch)} {_q(self.branch)}"

    @property
    def paths(self) -> list[str]:
        return [str(p) for p in self.evidence.get("conflicted_paths") or []]

    @property
    def said(self) -> str:
        return str(self.evidence.get("last_line") or "see the stderr in the evidence")

    def announce(self) -> Step:
        return Step("Emit `finalize_ready` for the new tip.", (emit_command(self.slug, self.branch),))

    def requeue(self) -> Step:
        return Step("Requeue the candidate.", (self.resume,))


def _merge_conflict(c: Case) -> Remedy:
    emit = emit_command(c.slug, c.branch)
    return Remedy(
        f"Merge {c.main_branch} into {c.branch} ({code_span(c.update)}), resolve the conflicts in "
        f"{_path_list(c.paths, 5)}, commit and push ({code_span(c.push)}), then emit finalize_ready with "
        f"the new sha: {code_span(emit)}.",
        (
            Step(
                f"Merge {c.main_branch} into {c.branch} and resolve the conflicts in {_path_list(c.paths, 10)}.",
                (c.update, "git add -- <resolved paths> && git commit"),
            ),
            Step("Push the branch.", (c.push,)),
            c.announce(),
        ),
    )


def _verify_failed(c: Case) -> Remedy:
    ev = c.evidence
    # The evidence always names the command; a placeholder keeps both forms well-formed if not.
    cmd = str(ev.get("command_line") or "<verify command>")
    why = "timed out" if ev.get("timed_out") else f"exited with status {ev.get('exit_status')}"
    emit = emit_command(c.slug, c.branch)
    return Remedy(
        f"The verify command {code_span(cmd)} {why} on {c.main_branch}+{c.branch}: "
        f"reproduce it with {code_span(c.update + ' && ' + cmd)}, fix the failure, "
        f"push ({code_span(c.push)}), then emit finalize_ready with the new sha: {code_span(emit)}.",
        (
            Step(
                f"Reproduce the verify failure on {c.main_branch}+{c.branch}.",
                (c.update, cmd),
            ),
            Step("Fix the failure and commit.", ()),
            Step("Push the branch.", (c.push,)),
            c.announce(),
        ),
    )


def _push_rejected(c: Case) -> Remedy:
    # Retries ran out (the runtime records ``retries``): main kept moving, nothing is wrong.
    if "retries" in c.evidence or c.evidence.get("main_moved"):
        return Remedy(
            f"{c.main_branch} kept moving while {c.slug} was being integrated and every push was rejected; "
            f"nothing needs fixing on {c.branch}: once {c.main_branch} settles, run {code_span(c.resume)}.",
            (
                Step(f"Wait until {c.main_branch} stops moving (nothing to fix on {c.branch}).", ()),
                c.requeue(),
            ),
        )
    verify = "integrator authority verify"
    return Remedy(
        f"The remote refused the integrator's push of {c.main_branch} ({c.said}): check the remote's hooks "
        f"and the integrator credential ({code_span(verify)}), then run {code_span(c.resume)}.",
        (
            Step(
                "Read why the remote refused the push (stderr in the evidence); check its hooks and "
                "the integrator credential.",
                (verify,),
            ),
            c.requeue(),
        ),
    )


def _branch_moved(c: Case) -> Remedy:
    tip = c.evidence.get("branch_tip")
    new_tip = tip if _is_sha(tip) else f'"$(git rev-parse {_q(f"{c.remote}/{c.branch}")})"'
    emit = emit_command(c.slug, c.branch, str(new_tip))
    return Remedy(
        f"{c.branch} moved after finalize_ready, so the announced sha is no longer its tip: if the new "
        f"tip is what should land, emit finalize_ready for it: {code_span(emit)}.",
        (
            Step(
                f"Check that the new tip of {c.branch} is what should land.",
                (f"git fetch {_q(c.remote)} && git log --oneline -5 {_q(f'{c.remote}/{c.branch}')}",),
            ),
            Step("Emit `finalize_ready` for the new tip.", (emit,)),
        ),
    )


def _not_reachable(c: Case) -> Remedy:
    sha = c.evidence.get("sha")
    push = f"git push {_q(c.remote)} {_q(f'{sha}:refs/heads/{c.branch}')}" if _is_sha(sha) else c.push
    return Remedy(
        f"The candidate sha is not on {c.remote}: push it ({code_span(push)}), then run {code_span(c.resume)}.",
        (Step(f"Push the candidate sha to {c.remote}.", (push,)), c.requeue()),
    )


def _git_error(c: Case) -> Remedy:
    return Remedy(
        f"git failed ({c.said}): check the stderr in the evidence and the remote "
        f"({code_span(c.ls_remote)}), then run {code_span(c.resume)}.",
        (Step("Read the git stderr in the evidence and check the remote.", (c.ls_remote,)), c.requeue()),
    )


REMEDIES: dict[ReasonCode, Callable[[Case], Remedy]] = {
    ReasonCode.MERGE_CONFLICT: _merge_conflict,
    ReasonCode.VERIFY_FAILED: _verify_failed,
    ReasonCode.PUSH_REJECTED: _push_rejected,
    ReasonCode.BRANCH_MOVED: _branch_moved,
    ReasonCode.NOT_REACHABLE: _not_reachable,
    ReasonCode.GIT_ERROR: _git_error,
}


def remedy(
    reason_code: str, *, slug: str, branch: str, evidence: dict[str, Any], remote: str, main_branch: str
) -> Remedy:
    """The fix for a candidate blocked with ``reason_code``; :class:`InvalidInput` for an unknown code."""
    case = Case(slug, branch, evidence, remote, main_branch)
    return REMEDIES[check_reason_code(reason_code)](case)


def next_action(
    reason_code: str, *, slug: str, branch: str, evidence: dict[str, Any], remote: str, main_branch: str
) -> str:
    """One sentence saying exactly what unblocks this candidate, with the commands filled in."""
    case = {"slug": slug, "branch": branch, "remote": remote, "main_branch": main_branch}
    return remedy(reason_code, evidence=evidence, **case).action


def plan_steps(
    reason_code: str, *, slug: str, branch: str, evidence: dict[str, Any], remote: str, main_branch: str
) -> list[Step]:
    """The checklist that unblocks the candidate: fix, push, announce, confirm."""
    case = {"slug": slug, "branch": branch, "remote": remote, "main_branch": main_branch}
    confirm = Step(
        f"Confirm it integrated (`integrator status` lists {slug} as integrated); this follow-up is "
        "then marked resolved by the integrator.",
        # `status` takes no slug argument: filter its text for this one.
        (f"integrator status | grep -F -- {_q(slug)}",),
    )
    return [*remedy(reason_code, evidence=evidence, **case).steps, confirm]
