"""One capped exponential back-off for everything that retries.

Used by stream reconnects (`crowdsight.sources.stream.LiveSource`), the runner's worker
restarts and store-write retries (`crowdsight.pipeline.supervision`,
`crowdsight.pipeline.persistence`) and outbox deliveries (`crowdsight.outputs.dispatcher`),
so the curve is defined, tested and tuned in one place.

Example:
    >>> b = Backoff(initial_s=1.0, max_s=8.0, jitter=0.0)
    >>> [b.delay_s(n) for n in range(5)]
    [1.0, 2.0, 4.0, 8.0, 8.0]
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Growth stops here; far beyond any ``max_s`` and safe from float overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """Capped exponential back-off with jitter between attempts.

    The n-th consecutive failed attempt waits ``min(max_s, initial_s * factor**n)`` seconds,
    scaled by a random factor in ``[1 - jitter, 1 + jitter]`` so that many cameras behind one
    failed switch do not all retry in the same instant.

    Args:
        initial_s: First wait. Short, because most failures are brief.
        max_s: Longest wait. Bounds how long something stays down after its cause is gone.
        factor: Growth per failed attempt.
        jitter: Relative randomisation of each wait (0: none).
        fail_after: Consecutive failed attempts after which a source's state reads
            ``failed`` (it keeps retrying at ``max_s``).
        max_attempts: Give up after this many consecutive failures; None retries forever,
            which is what a camera service wants.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    fail_after: int = 5
    max_attempts: int | None = None

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number ``attempt`` (0-based) is retried."""
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        base = min(self.max_s, self.initial_s * self.factor**exponent)
        if self.jitter <= 0:
            return float(base)
        r = (rng or random).uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return float(min(self.max_s * (1.0 + self.jitter), base * r))
