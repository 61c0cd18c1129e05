"""One holder identity: the lease's name, the verify record's pid and stamp, the commit trailer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from integrator import procs


def test_this_process_is_named_once_for_the_lease_the_record_and_the_trailer() -> None:
    me = procs.Holder.me()
    assert me.name == f"{socket.gethostname()}:{os.getpid()}"
    assert me.trailer == f"teleclaude-integrator@{socket.gethostname()}"
    assert me.local and me.alive()
    assert procs.Holder.from_name(me.name, me.stamp) == me


def test_a_chosen_name_is_no_process_and_another_host_is_not_local() -> None:
    assert procs.Holder.from_name("bot") is None
    assert procs.Holder.from_name("host:not-a-pid") is None
    assert procs.Holder.from_name(":123") is None
    other = procs.Holder.from_name("elsewhere.example:123")
    assert other is not None and not other.local


def test_a_holder_whose_process_ended_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    stamp = procs.start_stamp(child.pid)
    held = procs.Holder(socket.gethostname(), child.pid, stamp)
    child.wait()
    assert not held.alive()
