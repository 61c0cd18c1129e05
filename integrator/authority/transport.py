"""How ``authority verify`` reaches the remote: a path, file://, or a server transport (git, ssh, http).

A server transport makes the hooks a boundary; a local one runs receive-pack as the pusher, so the
hooks there are only a guard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from integrator.authority.record import read_record, record_path
from integrator.authority.remote import CONTROL, check_bare
from integrator.config import Config
from integrator.errors import InvalidInput

_SERVER_SCHEMES = ("git", "ssh", "git+ssh", "ssh+git", "http", "https")
_SCP_LIKE = re.compile(r"(?:[^@/:]+@)?[^/:]+:(?!//).*")


@dataclass(frozen=True)
class Transport:
    """How ``verify`` reaches the remote, and whether the hooks there are a boundary or only a guard."""

    url: str
    shown: str
    scheme: str
    bare: Path | None
    bare_note: str = ""

    @property
    def server(self) -> bool:
        return self.scheme in _SERVER_SCHEMES

    @property
    def kind(self) -> str:
        return "server" if self.server else "local"

    def describe(self) -> str:
        if self.server:
            return (
                f"boundary: {self.scheme} is a server transport; pushers cannot choose how receive-pack runs "
                "(it holds as long as they cannot write the bare repository as its owner)"
            )
        return (
            f"guard only: a {self.scheme} remote runs receive-pack as the pusher, who can switch the "
            "hooks off or edit the repository; serve it with `integrator remote serve` to make it a boundary"
        )


def _shown_url(spec: str) -> str:
    parts = urlsplit(spec)
    if parts.password is None:
        return spec
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=user + host).geturl()


def _bare_from_record(cfg: Config, url_path: str) -> tuple[Path | None, str]:
    name = url_path.rstrip("/").rsplit("/", 1)[-1]
    recorded = read_record(cfg).get("bare")
    if not isinstance(recorded, str):
        return None, f"{record_path(cfg)} records no bare repository"
    candidates = {name, f"{name}.git", name.removesuffix(".git")}
    if Path(recorded).name not in candidates:
        return None, f"the recorded bare repository {recorded} is not the one this URL names ({name})"
    try:
        return check_bare(recorded), ""
    except InvalidInput as err:
        return None, err.message


def classify_remote(spec: str, cfg: Config) -> Transport:
    """Parse ``--remote`` (a path or URL); InvalidInput for anything git could misread."""
    if not spec or CONTROL.search(spec) or spec.startswith("-"):
        raise InvalidInput(
            f"remote: {spec!r} is not a usable remote (empty, control characters or leading '-')"
        )
    scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""
    if scheme == "file":
        return Transport(url=spec, shown=spec, scheme="file", bare=check_bare(unquote(urlsplit(spec).path)))
    if scheme in _SERVER_SCHEMES:
        found, note = _bare_from_record(cfg, urlsplit(spec).path)
        return Transport(url=spec, shown=_shown_url(spec), scheme=scheme, bare=found, bare_note=note)
    if scheme:
        raise InvalidInput(
            f"remote: unsupported transport {scheme}:// (use a path, file://, git://, ssh:// or http(s)://)"
        )
    if "::" in spec:
        raise InvalidInput(f"remote: {spec!r} names a remote helper; verify only speaks git's own transports")
    if _SCP_LIKE.fullmatch(spec) and not Path(spec).exists():
        found, note = _bare_from_record(cfg, spec.split(":", 1)[1])
        return Transport(url=spec, shown=spec, scheme="ssh", bare=found, bare_note=note)
    bare = check_bare(spec)
    return Transport(url=str(bare), shown=str(bare), scheme="path", bare=bare)
