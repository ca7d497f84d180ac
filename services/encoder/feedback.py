"""When to encode, when to make an IDR and which bitrate to aim at: the encoder's decisions
from its viewers' services' messages (the WebRTC service's and the front door's), with time
passed in so tests need no clock tricks."""

from __future__ import annotations

from collections import deque

# Each source (the WebRTC service, the front door) repeats its StreamDemand every second;
# three missed in a row means that source is gone (killed, restarting) and its viewers with it.
DEMAND_TIMEOUT = 3.0
# Every viewer's PLI/FIR asks for an IDR, and a lossy link sends them in bursts; an IDR
# is 5–10 times a P-frame, so one per half second serves them all without flooding.
KEYFRAME_MIN_INTERVAL = 0.5
# Bitrate hints arrive per viewer, several a second. The stream is shared, so it follows
# the weakest link of the last few seconds, and moves at most this often.
BITRATE_WINDOW = 5.0
BITRATE_MIN_INTERVAL = 5.0
BITRATE_MIN_CHANGE = 0.1  # relative; smaller moves are noise
# Every REMB a viewer's browser sends becomes a hint, at a rate the browser chooses: only
# the hints that can still be the window's minimum are kept, and never more than this.
MAX_HINTS = 64


class EncodeControl:
    """Demand, keyframe requests and bitrate hints for one camera's stream."""

    def __init__(self, max_bitrate: int, floor: int) -> None:
        self.max_bitrate = max_bitrate
        self.floor = floor
        self.bitrate = max_bitrate
        self.viewers = 0  # the sum over the sources whose demand was fresh when last checked
        self._demands: dict[str, tuple[int, float]] = {}  # source -> (viewers, when)
        self._was_active = False
        self._wanted_at: float | None = None  # oldest unanswered keyframe request
        self._last_idr = float("-inf")
        # The window's hints that may still be its minimum: bitrates rising left to right.
        self._hints: deque[tuple[float, int]] = deque()
        self._last_change = float("-inf")

    def demand(self, viewers: int, now: float, source: str = "webrtc") -> None:
        """``source``'s viewers as of ``now``; it replaces that source's earlier demand only,
        and times out on its own."""
        self._demands[source] = (max(0, viewers), now)
        self.viewers = self._fresh(now)

    def _fresh(self, now: float) -> int:
        return sum(n for n, at in self._demands.values() if now - at <= DEMAND_TIMEOUT)

    def set_ceiling(self, bitrate: int, floor: int) -> None:
        """The governor's bitrate for the camera's rung: hints move under it from now on,
        and the next frame takes it without waiting out the hint rate limit."""
        self.max_bitrate, self.floor = bitrate, floor
        self._last_change = float("-inf")

    def keyframe_wanted(self, now: float) -> None:
        if self._wanted_at is None:
            self._wanted_at = now

    def bitrate_hint(self, bitrate: int, now: float) -> None:
        # A hint at or above this one, and older, is never the minimum while this one lasts.
        while self._hints and self._hints[-1][1] >= bitrate:
            self._hints.pop()
        self._expire(now)
        if len(self._hints) >= MAX_HINTS:  # rising hints: the newest stands for the highest
            self._hints.pop()
        self._hints.append((now, bitrate))

    @property
    def hints_kept(self) -> int:
        return len(self._hints)

    def _expire(self, now: float) -> None:
        while self._hints and now - self._hints[0][0] > BITRATE_WINDOW:
            self._hints.popleft()

    def active(self, now: float) -> bool:
        """Someone watches: the recent demands of all sources add up to more than zero."""
        self.viewers = self._fresh(now)
        return self.viewers > 0

    def force_idr(self, now: float) -> bool:
        """Whether the frame about to be encoded must be an IDR. Call once per frame, only
        while active: the first frame after going active is always one (a new viewer can
        start nowhere else)."""
        if not self._was_active:
            self._was_active = True
            return True
        return self._wanted_at is not None and now - self._last_idr >= KEYFRAME_MIN_INTERVAL

    def went_idle(self) -> None:
        self._was_active = False
        self._wanted_at = None

    def idr_sent(self, now: float) -> None:
        """An IDR went out (forced or on schedule): it answers every request made so far."""
        self._last_idr = now
        self._wanted_at = None

    def next_bitrate(self, now: float) -> int | None:
        """A new target when the hints call for one and the last change is old enough."""
        self._expire(now)
        if now - self._last_change < BITRATE_MIN_INTERVAL:
            return None
        want = min((b for _, b in self._hints), default=self.max_bitrate)
        want = max(self.floor, min(self.max_bitrate, want))
        small = abs(want - self.bitrate) < BITRATE_MIN_CHANGE * self.bitrate
        if want == self.bitrate or (small and want not in (self.floor, self.max_bitrate)):
            return None
        self.bitrate = want
        self._last_change = now
        return want
