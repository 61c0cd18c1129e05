"""The shipped session launcher: runs an agent's configured command in the repository, detached.

The command is an argument list handed to ``asyncio.create_subprocess_exec``; no shell ever sees
it, so an agent name or argument cannot inject anything. The child gets its own session (process
group), so it outlives a bot restart and does not receive the bot's Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from integrator.config import TOKEN_ENV, AgentConfig
from teleclaude.adapters.discord_adapter import LaunchError, LaunchUser, agent_key

log = logging.getLogger(__name__)

# Never handed to an agent: the bot's own credentials.
SECRET_ENV = frozenset({TOKEN_ENV})


class SubprocessLauncher:
    """``await launcher(agent, user)`` starts ``agent.command`` with ``cwd`` = the repository."""

    def __init__(
        self, repo_dir: Path, *, log_dir: Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.repo_dir = Path(repo_dir)
        self.log_dir = log_dir
        self.extra_env = dict(env or {})
        self._watchers: set[asyncio.Task[None]] = set()

    def _environment(self, agent: AgentConfig, user: LaunchUser) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        env.update(self.extra_env)
        # Lets the agent (and its logs) say who asked for it.
        env["TELECLAUDE_AGENT"] = agent.name
        env["TELECLAUDE_LAUNCHED_BY"] = str(user.id)
        return env

    def _output(self, agent: AgentConfig) -> IO[bytes] | int:
        if self.log_dir is None:
            return subprocess.DEVNULL
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Closed by __call__ right after the spawn: the child keeps its own descriptor.
        return open(self.log_dir / f"{agent_key(agent.name)}.log", "ab")

    async def __call__(self, agent: AgentConfig, user: LaunchUser) -> str:
        if not self.repo_dir.is_dir():
            raise LaunchError(f"the repository directory {self.repo_dir} does not exist")
        out = self._output(agent)
        try:
            proc = await asyncio.create_subprocess_exec(
                *agent.command,
                cwd=self.repo_dir,
                env=self._environment(agent, user),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out is not subprocess.DEVNULL else subprocess.DEVNULL,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise LaunchError(f"command not found: {agent.command[0]}") from None
        except PermissionError:
            raise LaunchError(f"not allowed to run {agent.command[0]}") from None
        except OSError as err:
            raise LaunchError(f"could not start {agent.command[0]}: {err.strerror or err}") from None
        finally:
            if not isinstance(out, int):
                out.close()  # the child holds its own descriptor
        log.info("agent started agent=%r pid=%s user=%s", agent.name, proc.pid, user.id)
        task = asyncio.create_task(self._watch(agent, proc), name=f"agent-{proc.pid}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return f"Started {agent.name} (pid {proc.pid}) in {self.repo_dir.name}."

    async def _watch(self, agent: AgentConfig, proc: asyncio.subprocess.Process) -> None:
        # Reaps the child and leaves a trace; the session itself is not ours to manage.
        status = await proc.wait()
        log.info("agent exited agent=%r pid=%s status=%s", agent.name, proc.pid, status)

    async def join(self, timeout: float | None = None) -> bool:
        """Wait (at most ``timeout`` s) until every agent started here has exited; True if they all did."""
        if not self._watchers:
            return True
        _, pending = await asyncio.wait(set(self._watchers), timeout=timeout)
        return not pending

    async def aclose(self) -> None:
        """Stop watching (the agents keep running: they were started detached on purpose)."""
        for task in list(self._watchers):
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
