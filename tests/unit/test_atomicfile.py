"""The one atomic write: whole-file replacement, owner-only by default, a shared file's mode kept."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from integrator.atomicfile import KEEP, write_atomic


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_is_owner_only_and_holds_the_text(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    write_atomic(target, "s3cret\n")
    assert target.read_text(encoding="utf-8") == "s3cret\n"
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]  # no temporary file left


def test_an_explicit_mode_is_set_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "hook"
    old = os.umask(0o077)
    try:
        write_atomic(target, b"#!/bin/sh\n", mode=0o755)
    finally:
        os.umask(old)
    assert mode(target) == 0o755
    assert target.read_bytes() == b"#!/bin/sh\n"


def test_keep_keeps_a_shared_files_mode_and_a_new_one_follows_the_umask(tmp_path: Path) -> None:
    shared = tmp_path / "roadmap.yaml"
    shared.write_text("old\n", encoding="utf-8")
    shared.chmod(0o664)
    write_atomic(shared, "new\n", mode=KEEP)
    assert (shared.read_text(encoding="utf-8"), mode(shared)) == ("new\n", 0o664)
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "fresh.md", "x", mode=KEEP)
    finally:
        os.umask(old)
    assert mode(tmp_path / "fresh.md") == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text("old = 1\n", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "\udcff")  # a lone surrogate cannot be encoded: fails mid-write
    assert target.read_text(encoding="utf-8") == "old = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]
