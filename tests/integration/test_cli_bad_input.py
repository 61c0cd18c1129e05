"""Issue #16 "Events" through the real ``integrator`` command: bad flags and stdin are one line, exit 2,
nothing stored."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import INTEGRATOR, cli, ok

from integrator.config import Config

SHA = "a" * 40
NOT_UTF8 = os.fsdecode(b"x\xff")  # how Python hands a non-UTF-8 argv byte to the program


def events_stored(cfg: Config) -> str:
    return ok(cfg, "events", "--json")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["review_approved", "--slug", "s", "--sha", SHA, "--reviewer", "r", "--round", "٣"],
         "Invalid value for '--round': '٣' is not a whole number in digits 0-9"),
        (["review_approved", "--slug", "s", "--sha", SHA, "--reviewer", "r", "--round", "1" * 5000],
         "Invalid value for '--round'"),
        (["branch_pushed", "--branch", "b", "--sha", SHA, "--at", "2026-01-01T00:00:00z"],
         "--at: '2026-01-01T00:00:00z' is not an ISO-8601 timestamp with a timezone"),
        (["branch_pushed", "--branch", "b", "--sha", SHA, "--at", "1767268800"], "--at: '1767268800'"),
        (["finalize_ready", "--slug", "s", "--branch", "b", "--sha", SHA, "--worker", "w",
          "--at", "0001-01-01T00:30:00+01:00"], "--at: 0001-01-01T00:30:00+01:00 is outside the years 1-9999"),
        (["branch_pushed", "--branch", NOT_UTF8, "--sha", SHA], "--branch: not valid UTF-8"),
        (["finalize_ready", "--slug", "s", "--branch", "b", "--sha", SHA, "--worker", NOT_UTF8],
         "--worker: not valid UTF-8"),
    ],
)  # fmt: skip
def test_bad_flags_are_one_line_exit_2_and_store_nothing(
    config: Config, args: list[str], needle: str
) -> None:
    before = events_stored(config)
    res = cli(config, "emit", *args)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert needle in res.stderr
    assert events_stored(config) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["pause", "--reason", NOT_UTF8], "Invalid value for '--reason': not valid UTF-8"),
        (["resume", NOT_UTF8], "Invalid value for 'SLUG': not valid UTF-8"),
        (["resume", "../../etc"], "slug: '../../etc' must match"),
    ],
)
def test_other_commands_name_the_bad_argument(config: Config, args: list[str], needle: str) -> None:
    ok(config, "status")
    res = cli(config, *args)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert needle in res.stderr


@pytest.mark.parametrize(
    ("stdin", "needle"),
    [
        (b'{"type": "branch_pushed"}\n\xff\xfe\n', "stdin: not valid UTF-8 (line 2, byte 26)"),
        (b"[" * 1000 + b"]" * 1000, "line 1: nested deeper than"),
        (b'{"type": "branch_pushed", "payload": {"x": ' + b"9" * 5000 + b"}}", "an integer of 5000 digits"),
    ],
)
def test_bad_stdin_is_one_line(config: Config, stdin: bytes, needle: str) -> None:
    before = events_stored(config)
    res = subprocess.run(
        [INTEGRATOR, "--config", str(config.config_path), "emit", "--json", "-"],
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    err = res.stderr.decode()
    assert res.returncode == 2 and err.count("\n") == 1, err
    assert needle in err and "Traceback" not in err
    assert events_stored(config) == before
