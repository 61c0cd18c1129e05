"""How long to wait before trying again: one policy for every retry loop in the product.

A loop that retries (a git lock held by another process, a database locked by a writer, a failed
delivery, a Discord connection that dropped, a task that crashed) asks its :class:`Backoff` for the
pause after its n-th failure in a row, or walks :meth:`Backoff.pauses` when it must give up at a
deadline. Delays grow by ``factor`` up to ``max_s``; ``jitter`` shortens each by a random fraction
so that processes that failed together (two runners behind one lock) do not retry in lockstep.

Not a backoff, and not drawn from here: a standby sleeping until the holder's lease expires, an
idle runner's re-check interval, the delivery loop's once-a-second look for other processes' rows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Past this many doublings every sane policy sits at its cap; it keeps factor ** attempt finite.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """Capped exponential delays: ``first_s``, ``first_s * factor``, … up to ``max_s``, less jitter."""

    first_s: float
    max_s: float
    factor: float = 2.0
    jitter: float = 0.1  # each delay is drawn from [delay * (1 - jitter), delay]

    def __post_init__(self) -> None:
        if not (0 < self.first_s <= self.max_s) or self.factor < 1 or not (0 <= self.jitter < 1):
            raise ValueError(f"not a backoff policy: {self}")

    def delay(self, attempt: int) -> float:
        """The pause after ``attempt`` failures in a row have already been waited out (0: the first)."""
        base = min(self.max_s, self.first_s * self.factor ** min(max(attempt, 0), _MAX_EXPONENT))
        return base * (1 - self.jitter * random.random()) if self.jitter else base

    def pauses(
        self, timeout: float | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> Iterator[float]:
        """The successive pauses of one retry loop; with ``timeout`` (seconds from now), each is cut to
        the time left and the iterator ends once the deadline has passed (the caller gives up)."""
        deadline = None if timeout is None else clock() + timeout
        attempt = 0
        while True:
            pause = self.delay(attempt)
            if deadline is not None:
                left = deadline - clock()
                if left <= 0:
                    return
                pause = min(pause, left)
            yield pause
            attempt += 1
