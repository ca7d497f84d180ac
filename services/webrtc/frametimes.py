"""Per access unit, when it reached this service and when the first viewer's sender took it,
against its capture time: the server's half of WebRTC's capture → shown split
(benchmarks/chromium_latency.py ``--modes rtcstages`` joins it with Chromium's half by pts,
which is the RTP timestamp less the sender's random origin).

A sender takes an AU and builds its RTP packets without yielding (track.py), and its first
``sendto`` of the frame follows in the same turn of the event loop (rtpsend.py, unless the
Pacer makes it wait), so "taken" is the first packet's departure to within the packing
time."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

KEEP = 600  # 20 s at 30 fps


class FrameTimes:
    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        # pts → [capture wall, arrived wall, taken wall or None]
        self._frames: dict[int, list[Any]] = {}
        self._order: deque[int] = deque()
        self.arrive_ms: deque[float] = deque(maxlen=KEEP)  # capture → arrived, per AU
        self.send_ms: deque[float] = deque(maxlen=KEEP)  # capture → first sender took it

    def arrived(self, pts: int, ts_wall: float) -> None:
        now = self._clock()
        self._frames[pts] = [ts_wall, now, None]
        self._order.append(pts)
        if len(self._order) > KEEP:
            self._frames.pop(self._order.popleft(), None)
        self.arrive_ms.append(1000 * (now - ts_wall))

    def taken(self, pts: int) -> None:
        entry = self._frames.get(pts)
        if entry is None or entry[2] is not None:
            return  # a later viewer of the same AU: the first one's departure counts
        entry[2] = self._clock()
        self.send_ms.append(1000 * (entry[2] - entry[0]))

    def summary(self) -> dict[str, float]:
        """p50 and max of the recent AUs' delays in ms (0 when there were none)."""
        out: dict[str, float] = {}
        for name, values in (("arrive", self.arrive_ms), ("send", self.send_ms)):
            ordered = sorted(values)
            out[f"{name}_p50_ms"] = round(ordered[len(ordered) // 2], 2) if ordered else 0.0
            out[f"{name}_max_ms"] = round(ordered[-1], 2) if ordered else 0.0
        return out

    def frames(self) -> list[list[Any]]:
        """[pts, capture, arrived, taken] of the recent AUs, oldest first."""
        return [[pts, *self._frames[pts]] for pts in self._order]
