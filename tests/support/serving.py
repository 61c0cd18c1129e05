"""Test-only: a served remote for the length of a ``with`` block (the product's serve runs until a signal)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from integrator.remote_serve import ServedRemote, start


@contextlib.contextmanager
def serving(bare: Path, *, port: int | None = None) -> Iterator[ServedRemote]:
    served = start(bare, port=port)
    try:
        yield served
    finally:
        served.stop()
