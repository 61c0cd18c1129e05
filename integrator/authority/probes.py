"""The probes of ``authority verify``: every known way around the pre-receive guard, and what each
must find in the current mode. :mod:`integrator.authority.verify` runs them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from integrator import git
from integrator.authority.credential import TOKEN_OPTION, push_options_env
from integrator.authority.transport import Transport
from integrator.config import Config

# Marks verify's own pushes: post-receive spools none of them, so no probe becomes a readiness event.
PROBE_OPTION = "integrator-probe"

Expect = Literal["rejected", "allowed", "local-only bypass", "skipped"]
Effect = Literal["main", "main-deleted", "feature", "atomic", "head", "ref"]

PROBE_IDENTITY = {
    "GIT_AUTHOR_NAME": "integrator verify",
    "GIT_AUTHOR_EMAIL": "integrator-verify@localhost",
    "GIT_COMMITTER_NAME": "integrator verify",
    "GIT_COMMITTER_EMAIL": "integrator-verify@localhost",
}


@dataclass(frozen=True)
class Probe:
    name: str
    args: tuple[str, ...]
    expect: Expect
    effect: Effect = "main"
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None
    # Some server transports refuse the command outright (git-shell and a custom --receive-pack);
    # for those probes any refusal that left main alone counts as holding.
    any_refusal_holds: bool = False
    # A refusal by receive-pack itself (not the hook) that is still the expected behaviour:
    # (text in git's message, what to say about it).
    git_refusal: tuple[str, str] | None = None
    note: str = ""
    ref: str = ""  # effect "ref": this ref now exists (it did not before)


@dataclass
class ProbeRun:
    """State of one verify run: the scratch clones, the shas it pushes, and what must be undone."""

    cfg: Config
    transport: Transport
    mode: str
    credential: str
    tmp: Path
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    main_before: str = ""
    probe_sha: str = ""
    orphan_sha: str = ""
    alias: str | None = None
    head_existed: bool = False
    refs_before: frozenset[str] = frozenset()

    @property
    def main_ref(self) -> str:
        return f"refs/heads/{self.cfg.main_branch}"

    @property
    def prefix(self) -> str:
        return f"refs/heads/integrator-verify/{self.run_id}/"

    @property
    def scratch(self) -> Path:
        return self.tmp / "scratch"

    @property
    def marker(self) -> str:
        return f"{PROBE_OPTION}={self.run_id}"

    def run(
        self,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        check: bool = True,
        cwd: Path | None = None,
    ) -> git.Result:
        merged = dict(PROBE_IDENTITY)
        merged.update(env or {})
        return git.run_sync(
            args, cwd=cwd or self.scratch, env=merged, check=check, timeout=self.cfg.git_timeout_s
        )

    def point_main(self, sha: str) -> None:
        """Set the scratch clone's own main, which the probes that push `main` by name send."""
        self.run(["update-ref", self.main_ref, sha])

    def remote_heads(self) -> dict[str, str]:
        # Every ref, not only branches: a tag or replace ref named like main is a probe's effect too.
        out = self.run(["ls-remote", "--", self.transport.url], cwd=self.tmp).stdout
        heads = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            heads[ref] = sha
        return heads

    def integrator_push(self, refspec: str, lease: str) -> git.Result:
        env = push_options_env([f"{TOKEN_OPTION}={self.credential}", self.marker])
        return self.run(
            ["push", f"--force-with-lease={lease}", self.transport.url, refspec],
            env=env,
            check=False,
        )


_DELETE_CURRENT = (
    "deletion of the current branch prohibited",
    "the hook let it through; receive-pack itself refuses to delete the remote's HEAD branch "
    "(receive.denyDeleteCurrent)",
)


def _guarded(v: ProbeRun) -> Expect:
    return "rejected" if v.mode == "cutover" else "allowed"


def probe_list(v: ProbeRun) -> list[Probe]:
    """Every bypass ``authority verify`` tries, in order.

    Long, and kept whole on purpose: it is a table (one ``Probe`` per bypass), read top to bottom.
    """
    url, main, p = v.transport.url, v.cfg.main_branch, v.probe_sha
    mark = ("-o", v.marker)
    guarded = _guarded(v)
    no_hooks_config = v.tmp / "hooks-off.gitconfig"
    no_hooks_config.write_text("[core]\n\thooksPath = /dev/null\n", encoding="utf-8")
    # In cutover a forged GIT_PUSH_OPTION_* must arrive with no real push option at all, or
    # receive-pack would overwrite it; in shadow the push is let through anyway and marked as a probe.
    forged_mark = () if v.mode == "cutover" else mark
    rp_expect: Expect = guarded if (v.transport.server or v.mode == "shadow") else "local-only bypass"
    probes = [
        Probe("plain push of main", ("push", *mark, url, main), guarded),
        Probe("HEAD:main", ("push", *mark, url, f"HEAD:{main}"), guarded),
        Probe("refs/heads/main", ("push", *mark, url, f"HEAD:{v.main_ref}"), guarded),
        Probe(
            "+main (force)",
            ("push", *mark, url, f"+{main}"),
            guarded,
            prepare=lambda: v.point_main(v.orphan_sha),
            note="a non-fast-forward rewrite of main",
        ),
        Probe(
            "--no-verify", ("push", "--no-verify", *mark, url, main), guarded, prepare=lambda: v.point_main(p)
        ),
        Probe(
            "delete main (--delete)",
            ("push", *mark, url, "--delete", main),
            guarded,
            effect="main-deleted",
            git_refusal=_DELETE_CURRENT,
        ),
        Probe(
            "delete main (:main)",
            ("push", *mark, url, f":{v.main_ref}"),
            guarded,
            effect="main-deleted",
            git_refusal=_DELETE_CURRENT,
        ),
        _mirror_probe(v, mark),
        Probe("--all", ("push", "--all", *mark, url), guarded),
        Probe(
            "--atomic with a feature branch",
            ("push", "--atomic", *mark, url, f"{p}:{v.main_ref}", f"{p}:{v.prefix}atomic"),
            guarded,
            effect="atomic",
            note="main and a feature branch in one all-or-nothing push",
        ),
        Probe(
            "wrong credential",
            ("push", "-o", f"{TOKEN_OPTION}={secrets.token_hex(32)}", *mark, url, main),
            guarded,
        ),
        Probe(
            "credential only in an environment variable",
            ("push", *mark, url, main),
            guarded,
            env={"INTEGRATOR_TOKEN": v.credential, "INTEGRATOR_CREDENTIAL": v.credential},
        ),
        Probe(
            "forged GIT_PUSH_OPTION_* environment",
            ("push", *forged_mark, url, main),
            guarded,
            env={"GIT_PUSH_OPTION_COUNT": "1", "GIT_PUSH_OPTION_0": f"{TOKEN_OPTION}={v.credential}"},
        ),
        _symref_probe(v, mark),
        Probe(
            "--receive-pack with hooks off",
            ("push", "--receive-pack=git -c core.hooksPath=/dev/null receive-pack", *mark, url, main),
            rp_expect,
            any_refusal_holds=True,
            note=_receive_pack_note(v, rp_expect),
        ),
        Probe(
            "GIT_CONFIG_GLOBAL turning hooks off",
            ("push", *mark, url, main),
            guarded,
            env={"GIT_CONFIG_GLOBAL": str(no_hooks_config)},
            note="closed by core.hooksPath pinned in the bare repository's config",
        ),
        Probe(
            "git -c core.hooksPath=/dev/null push",
            ("-c", "core.hooksPath=/dev/null", "push", *mark, url, main),
            guarded,
        ),
        Probe(
            "push to refs/heads/HEAD",
            ("push", *mark, url, f"{p}:refs/heads/HEAD"),
            "rejected",
            effect="head",
            note="a branch named HEAD confuses every clone; refused in both modes",
        ),
        *_lookalike_probes(v, mark),
        Probe("feature branch", ("push", *mark, url, f"{p}:{v.prefix}feature"), "allowed", effect="feature"),
    ]
    return probes


def lookalike_refs(v: ProbeRun) -> list[str]:
    """Refs that could stand in for main: a replacement of its commit, and its name elsewhere or cased."""
    main = v.cfg.main_branch
    found = [f"refs/replace/{v.main_before}", f"refs/tags/{main}", f"refs/remotes/origin/{main}"]
    if main.swapcase() != main:
        found.append(f"refs/heads/{main.swapcase()}")
    return found


def _lookalike_probes(v: ProbeRun, mark: tuple[str, ...]) -> list[Probe]:
    return [
        Probe(
            f"create {ref.replace(v.main_before, '<main>')}",
            ("push", *mark, v.transport.url, f"{v.probe_sha}:{ref}"),
            _guarded(v),
            effect="ref",
            ref=ref,
            note="named like main or replacing its commit: it could stand in for main",
        )
        for ref in lookalike_refs(v)
        if ref not in v.refs_before
    ]


def _receive_pack_note(v: ProbeRun, expect: Expect) -> str:
    if expect == "local-only bypass":
        return "the pusher runs receive-pack on a local transport; nothing in the repository can stop it"
    if v.transport.server:
        return (
            "a server transport runs its own receive-pack; the client cannot choose one (the server "
            "refuses the request, or runs its own with the hooks)"
        )
    return ""


def _mirror_probe(v: ProbeRun, mark: tuple[str, ...]) -> Probe:
    if v.mode == "shadow":
        return Probe(
            "--mirror",
            (),
            "skipped",
            note="not run in shadow: main is open, and --mirror would really prune branches "
            "pushed while verify runs",
        )
    mirror = v.tmp / "mirror.git"

    def prepare() -> None:
        # A mirror of the remote itself, so a --mirror that got through would change nothing but main;
        # --force-with-lease keeps it from rewinding a branch someone pushed meanwhile.
        if not mirror.exists():
            # --reference: the probe commit exists only in the scratch clone.
            clone = [
                "clone",
                "--quiet",
                "--mirror",
                "--reference",
                str(v.scratch),
                v.transport.url,
                str(mirror),
            ]
            v.run(clone, cwd=v.tmp)
        v.run(["update-ref", v.main_ref, v.probe_sha], cwd=mirror)

    return Probe(
        "--mirror",
        ("-C", str(mirror), "push", "--mirror", "--force-with-lease", *mark, v.transport.url),
        "rejected",
        prepare=prepare,
    )


def _symref_probe(v: ProbeRun, mark: tuple[str, ...]) -> Probe:
    name = "server-side symbolic ref to main"
    bare = v.transport.bare
    if bare is None:
        return Probe(
            name, (), "skipped", note=f"cannot create a symbolic ref on the server: {v.transport.bare_note}"
        )
    alias = f"{v.prefix}alias"

    def prepare() -> None:
        v.run(["symbolic-ref", alias, v.main_ref], cwd=bare)
        v.alias = alias

    return Probe(
        name,
        ("push", *mark, v.transport.url, f"{v.probe_sha}:{alias}"),
        _guarded(v),
        prepare=prepare,
        note=f"{alias.removeprefix('refs/heads/')} -> {v.cfg.main_branch}, made in the bare repository",
    )
