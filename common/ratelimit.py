"""Token buckets, one per key, shared by the front door's limits (services/mjpeg/limits.py)
and the Mirage proxy's (mirage/limits.py).

Buckets do not grow without bound: a bucket that has refilled is the same as a new one, so
idle keys are dropped, and past ``MAX_KEYS`` the least recently used go first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

MAX_KEYS = 4096  # per limit: a few thousand clients at once is far beyond one printer
Key = tuple[str, str]


class RateLimit:
    """Token buckets of one rate and burst, one per key."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Key, tuple[float, float]] = OrderedDict()  # tokens, when
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: Key, now: float) -> float:
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - stamp) * self.rate)

    def take(self, keys: Sequence[Key]) -> float:
        """One token from each key's bucket: 0 when taken, else the seconds until every
        bucket has one again (nothing is taken then: a refused request costs nothing)."""
        now = self._clock()
        self._sweep(now)
        levels = [self._level(k, now) for k in keys]
        wait = self._wait(levels)
        if wait:
            return wait
        for key, level in zip(keys, levels, strict=True):
            self._buckets[key] = (level - 1.0, now)
            self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return 0.0

    def wait(self, keys: Sequence[Key]) -> float:
        """What take() would answer, without taking: for a request that must also pass
        another limit before it costs anything here."""
        now = self._clock()
        return self._wait([self._level(k, now) for k in keys])

    def _wait(self, levels: list[float]) -> float:
        short = max((1.0 - level for level in levels), default=0.0)
        return short / self.rate if short > 0 else 0.0

    def _sweep(self, now: float) -> None:
        """Drop the buckets that have refilled, once per refill time."""
        refill = self.burst / self.rate
        if now - self._swept < refill:
            return
        self._swept = now
        for key in [k for k in self._buckets if self._level(k, now) >= self.burst]:
            del self._buckets[key]
