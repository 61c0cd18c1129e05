"""`integrator remote serve`: a real git daemon on loopback, pushes through it, a clean stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from authority_helpers import g, make_setup
from conftest import wait_for
from support.serving import serving


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_serve_prints_the_url_enforces_the_hooks_and_stops_on_sigterm(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    command = [
        sys.executable,
        "-I",
        "-c",
        "from integrator.cli import main; main()",
        "--config",
        str(s.config_path),
        "remote",
        "serve",
        "--remote",
        str(s.bare),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("git://127.0.0.1:") and url.endswith("/remote.git")
        port = int(url.split(":")[2].split("/")[0])

        sha = s.commit("through the daemon")
        feature = s.push(url, f"{sha}:refs/heads/served-feature")
        assert feature.returncode == 0, feature.stderr
        main = s.push(url, f"{sha}:refs/heads/main")
        assert main.returncode == 1 and "pre-receive hook declined" in main.stderr
        ingested = wait_for(
            lambda: [e for e in s.branch_pushed() if e["branch"] == "served-feature"],
            what="the event from a push over git://",
        )
        assert ingested[0]["pusher"] == "anonymous@127.0.0.1"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not _port_open(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serving_context_exports_only_the_bare_repository(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover", install=False)
    sibling = tmp_path / "sibling.git"
    g(tmp_path, "init", "-q", "--bare", str(sibling))
    with serving(s.bare) as daemon:
        assert g(tmp_path, "ls-remote", daemon.url).ok
        other = daemon.url.rsplit("/", 1)[0] + "/sibling.git"
        assert not g(tmp_path, "ls-remote", other, check=False).ok
        port = daemon.port
    assert not _port_open(port)


def test_serve_rejects_a_non_bare_path_with_status_2(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover", install=False)
    result = s.cli("remote", "serve", "--remote", str(s.work))
    assert result.exit_code == 2 and "not a bare repository" in result.output


def test_serve_rejects_a_name_that_cannot_be_a_git_url(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover", install=False)
    odd = tmp_path / "has space.git"
    g(tmp_path, "init", "-q", "--bare", str(odd))
    result = s.cli("remote", "serve", "--remote", str(odd))
    assert result.exit_code == 2 and "cannot serve" in result.output
