"""Configuration (README, *Configuration*): where the file is found, environment overrides, errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from integrator.config import (
    CONFIG_ENV,
    build_config,
    discord_token,
    find_config_path,
    load_config,
    write_config,
)
from integrator.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_config_path_is_flag_then_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert find_config_path(None) == tmp_path / "integrator.toml"
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "env.toml"))
    assert find_config_path(None) == tmp_path / "env.toml"
    assert find_config_path(tmp_path / "flag.toml") == tmp_path / "flag.toml"


def test_relative_paths_resolve_against_the_config_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg_path = write(tmp_path / "etc" / "integrator.toml", 'repo = "../repo"\ndb = "state/i.db"\n')
    monkeypatch.chdir("/")
    cfg = load_config(cfg_path)
    assert cfg.repo == tmp_path / "etc" / ".." / "repo"
    assert cfg.db == tmp_path / "etc" / "state" / "i.db"
    assert cfg.config_path == cfg_path.resolve()
    assert cfg.lease_ttl_s == 120.0 and cfg.mode == "shadow" and cfg.remote == "origin"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_path = write(
        tmp_path / "integrator.toml", 'repo = "r"\nlease_ttl_s = 60.0\n[gate]\nmin_decided = 5\n'
    )
    monkeypatch.setenv("INTEGRATOR_LEASE_TTL_S", "7.5")
    monkeypatch.setenv("INTEGRATOR_LEASE_RENEW_S", "2")
    monkeypatch.setenv("INTEGRATOR_GATE__MIN_DECIDED", "3")
    monkeypatch.setenv("DISCORD_TOKEN", "secret-token")
    cfg = load_config(cfg_path)
    assert cfg.lease_ttl_s == 7.5
    assert cfg.gate.min_decided == 3
    assert cfg.discord_token is not None and cfg.discord_token.get_secret_value() == "secret-token"
    assert "secret-token" not in repr(cfg) and "secret-token" not in str(cfg.file_dict())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('repo = "r"\nlease_ttl_s = -1\n', "lease_ttl_s: Input should be greater than 0 (got -1)"),
        ('repo = "r"\nmode = "yolo"\n', "mode: Input should be 'shadow' or 'cutover' (got 'yolo')"),
        ('repo = "r"\nremote = "--upload-pack=x"\n', "remote: Value error, must not start with '-'"),
        ('repo = "r"\nmain_branch = "a..b"\n', "main_branch: Value error, must not contain '..'"),
        ('repo = "r"\ntypo_key = 1\n', "typo_key: Extra inputs are not permitted (got 1)"),
        ("lease_ttl_s = 3.0\n", "repo: Field required"),
        (
            'repo = "r"\n[gate]\nmin_agreement = 2\n',
            "gate.min_agreement: Input should be less than or equal to 1",
        ),
    ],
)
def test_errors_name_the_key_and_the_value(tmp_path: Path, text: str, expected: str) -> None:
    cfg_path = write(tmp_path / "integrator.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg_path)
    assert str(cfg_path) in info.value.message
    assert expected in info.value.message


def test_the_token_is_read_from_discord_token_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_path = write(tmp_path / "integrator.toml", 'repo = "r"\n')
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert load_config(cfg_path).discord_token is None
    monkeypatch.setenv("DISCORD_TOKEN", "")
    assert discord_token() is None  # an empty variable is no token: headless
    # The prefixed spelling looks like any other setting; it is refused, not silently ignored.
    monkeypatch.setenv("INTEGRATOR_DISCORD_TOKEN", "leaked-token")
    with pytest.raises(ConfigError) as info:
        load_config(cfg_path)
    assert info.value.message == "INTEGRATOR_DISCORD_TOKEN is not read: set the token in DISCORD_TOKEN"
    assert "leaked-token" not in info.value.message


def test_missing_file_invalid_toml_and_token_in_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no configuration at .*run `integrator init --repo PATH`"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path / "bad.toml", "repo = \n"))
    with pytest.raises(ConfigError, match="discord_token must not be in the file; set DISCORD_TOKEN"):
        load_config(write(tmp_path / "tok.toml", 'repo = "r"\ndiscord_token = "x"\n'))


def test_write_then_load_round_trips_with_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "integrator.toml"
    cfg = build_config(
        {
            "repo": str(tmp_path / "repo"),
            "db": "i.db",
            "verify_command": "pytest -q 'a b'",
            "mode": "cutover",
        },
        path,
    )
    assert cfg.verify_command == ["pytest", "-q", "a b"]
    write_config(cfg, path)
    on_disk = tomllib.loads(path.read_text(encoding="utf-8"))
    assert on_disk["repo"] == "repo" and on_disk["db"] == "i.db"
    assert "discord_token" not in on_disk and "config_path" not in on_disk
    again = load_config(path)
    assert again.model_dump() == cfg.model_dump()
    assert not (tmp_path / "integrator.toml.tmp").exists()


def test_fingerprint_follows_what_a_verdict_depends_on(tmp_path: Path) -> None:
    base = {"repo": "r"}
    one = build_config({**base, "verify_command": "make test"}, tmp_path / "a.toml")
    same = build_config(
        {**base, "verify_command": "make test", "lease_ttl_s": 9, "lease_renew_s": 2}, tmp_path / "a.toml"
    )
    other = build_config({**base, "verify_command": "make check"}, tmp_path / "a.toml")
    assert one.fingerprint() == same.fingerprint() != other.fingerprint()
