"""``integrator demo``: the whole story on the embedded default, in the console, in seconds.

Three workers push feature branches into a local sandbox. Two integrate cleanly; the third
conflicts and is blocked with its evidence and a follow-up todo; the worker fixes the branch, the
new sha supersedes the blocked one and integrates, and the follow-up is resolved.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import click

from integrator import git, outbox
from integrator.cli.common import handle_errors, run_async
from integrator.cli.render import candidate_line, notification_line, short, status_text
from integrator.config import Config, build_config, write_config
from integrator.delivery import deliver_pending
from integrator.events import Event, make_event, utcnow
from integrator.runner import Runner
from integrator.sandbox import Sandbox, Worker
from integrator.service import Integrator

BASE_FILES = {
    "README.md": "# demo service\n",
    "app/settings.txt": "name = demo\ntheme = light\ntimeout = 30\n",
}


def say(text: str = "") -> None:
    click.echo(text)


def step(title: str) -> None:
    say()
    say(click.style(f"== {title}", bold=True))


def ready_events(slug: str, branch: str, sha: str, worker: str) -> list[Event]:
    now = utcnow()
    return [
        make_event(
            "branch_pushed",
            {"branch": branch, "sha": sha, "remote": "origin", "pushed_at": now, "pusher": worker},
        ),
        make_event(
            "review_approved",
            {"slug": slug, "sha": sha, "reviewer": "reviewer-bot", "review_round": 1, "approved_at": now},
        ),
        make_event(
            "finalize_ready",
            {"slug": slug, "branch": branch, "sha": sha, "worker": worker, "ready_at": utcnow()},
        ),
    ]


class Demo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.sandbox = Sandbox.create(root / "repos", files=BASE_FILES)
        data = {
            "repo": str(self.sandbox.integrator_repo),
            "db": "integrator.db",
            "todos_dir": "todos",
            "state_dir": "state",
            "mode": "cutover",
            "idle_check_s": 1.0,
        }
        path = root / "integrator.toml"
        self.cfg: Config = build_config(data, path)
        write_config(self.cfg, path)

    async def show_notifications(self, integ: Integrator) -> None:
        async def show(note: outbox.Notification) -> None:
            say("  " + notification_line(note).replace("\n", "\n  "))

        await deliver_pending(integ.store, "console", show)

    async def submit(self, integ: Integrator, worker: Worker, slug: str, branch: str, sha: str) -> None:
        report = await integ.emit(ready_events(slug, branch, sha, worker.name), wait=True)
        say(
            f"  {worker.name} emitted branch_pushed, review_approved, finalize_ready for {slug} @ {short(sha)}"
        )
        for cand in report.candidates:
            if cand.sha == sha:
                say("    " + candidate_line(cand).replace("\n", "\n    "))

    async def drain(self, integ: Integrator) -> None:
        await Runner(self.cfg, integ.store, holder="demo-integrator").run(asyncio.Event(), once=True)
        await self.show_notifications(integ)

    def main_merges(self) -> list[str]:
        return [line for line in self.sandbox.main_log("%h %p|%s") if len(line.split("|")[0].split()) > 2]

    async def run(self) -> None:
        sb = self.sandbox
        say(f"sandbox: {self.root}  (bare remote {sb.remote.name}, integrator clone, worker clones)")
        async with await Integrator.open(self.cfg) as integ:
            await integ.store.write(lambda c: outbox.register(c, "console", from_start=True))
            step("1. three workers push feature branches")
            pushed = self.push_branches()
            step("2. readiness events make each candidate ready and queued (FIFO by ready_at)")
            for worker, slug, branch, sha in pushed:
                await self.submit(integ, worker, slug, branch, sha)
            await self.show_notifications(integ)
            step("3. the integrator takes the lease and drains the queue")
            await self.drain(integ)
            merges = self.main_merges()
            say(f"  main now has {len(merges)} merge(s):")
            for line in merges:
                say("    " + line.replace("|", "  "))
            step("4. the blocked candidate's follow-up todo")
            await self.show_blocked(integ)
            step("5. carol merges main into her branch, resolves the conflict, pushes, emits again")
            await self.fix_theme(integ, pushed[2][0])
            step("6. the fixed sha integrates and the follow-up is resolved")
            await self.drain(integ)
            self.show_followup_state()
            step("7. integrator status")
            say(status_text(await integ.status()))
        say()
        say(
            f"main: {len(self.main_merges())} integrator merges, "
            "each with Integrated-By / Candidate-Slug / Candidate-Sha trailers"
        )
        say(f"see it again: integrator --config {self.cfg.config_path} status")

    def push_branches(self) -> list[tuple[Worker, str, str, str]]:
        """Alice and Carol both change the theme line, so Carol's branch (queued last) conflicts."""
        sb = self.sandbox
        alice, bob, carol = sb.worker("alice"), sb.worker("bob"), sb.worker("carol")
        alice.start("feature/login")
        a_sha = alice.commit(
            {
                "app/login.txt": "login = enabled\n",
                "app/settings.txt": "name = demo\ntheme = dark\ntimeout = 30\n",
            },
            "login page; dark theme",
        )
        alice.push("feature/login")
        bob.start("feature/search")
        b_sha = bob.commit({"app/search.txt": "search = fulltext\n"}, "search")
        bob.push("feature/search")
        carol.start("feature/theme")
        c_sha = carol.commit(
            {"app/settings.txt": "name = demo\ntheme = solarized\ntimeout = 30\n"}, "solarized theme"
        )
        carol.push("feature/theme")
        pushed = [
            (alice, "login", "feature/login", a_sha),
            (bob, "search", "feature/search", b_sha),
            (carol, "theme", "feature/theme", c_sha),
        ]
        for who, _, branch, sha in pushed:
            say(f"  {who.name:<6} pushed {branch} @ {short(sha)}")
        return pushed

    async def show_blocked(self, integ: Integrator) -> None:
        for b in await integ.blocked():
            say(f"  {b.slug}: {b.reason_code} on {', '.join(b.conflicted_paths)}")
            for path, hunk in b.hunks.items():
                say(f"  --- {path}")
                say("  " + hunk.rstrip().replace("\n", "\n  "))
            say(f"  follow-up: {b.follow_up.path if b.follow_up else None}")

    async def fix_theme(self, integ: Integrator, carol: Worker) -> None:
        carol.start("feature/theme", base="origin/feature/theme")
        await asyncio.to_thread(
            git.run_sync, ["merge", "--quiet", "--no-edit", "origin/main"], cwd=carol.path, check=False
        )
        fixed = carol.commit(
            {"app/settings.txt": "name = demo\ntheme = solarized-dark\ntimeout = 30\n"},
            "theme: merge main, keep solarized on top of dark",
        )
        carol.push("feature/theme")
        await self.submit(integ, carol, "theme", "feature/theme", fixed)
        await self.show_notifications(integ)

    def show_followup_state(self) -> None:
        state = self.cfg.todos_dir / "theme-integration-blocked" / "state.yaml"
        if state.exists():
            status_line = next((ln for ln in state.read_text().splitlines() if ln.startswith("status:")), "")
            say(f"  {state.relative_to(self.root)}: {status_line}")


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    default=".sandbox/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where to build the sandbox (replaced if present).",
)
@handle_errors
def demo(directory: str) -> None:
    """Run the whole story in a local sandbox: ready, integrate, block, fix, resolve."""
    root = Path(directory).resolve()
    if root.exists():
        if not (root / "integrator.toml").exists():
            raise click.UsageError(f"{root} exists and is not a demo sandbox; choose another --dir")
        shutil.rmtree(root)
    started = time.monotonic()
    run_async(Demo(root).run())
    say(f"(demo took {time.monotonic() - started:.1f}s)")


def register(cli: click.Group) -> None:
    """Attach this area's command to the root group."""
    cli.add_command(demo)
