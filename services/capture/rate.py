"""The frame rate capture tells the encoder (FrameReady.fps): what the source negotiated, or
what it really delivers once that has differed for a few seconds.

Real USB cameras often deliver less than they agreed to (15 fps in low light, 25 when 30
was asked): an encoder set for the negotiated rate would then stretch its keyframe interval
and starve each frame of bits. The decision is made once per status window, never per frame.
"""

from __future__ import annotations

# A measured rate this far off (as a fraction) is a different rate, not jitter; and only
# when it stays so for this many one-second windows in a row, so one slow second (a
# reopen, a stall) does not reopen the encoder.
TOLERANCE = 0.15
WINDOWS = 3


class DeliveredRate:
    """``fps`` is the rate to put on frames; ``start`` at each open of the source,
    ``window`` with each second's measured rate."""

    def __init__(self) -> None:
        self.nominal = 0.0  # negotiated, or the rate frames are thinned to
        self.fps = 0.0
        self._off = 0  # windows in a row that measured something else

    def start(self, nominal: float) -> None:
        self.nominal = self.fps = nominal
        self._off = 0

    def window(self, measured: float) -> bool:
        """One window's measured rate; True when ``fps`` changed."""
        if measured <= 0 or self.fps <= 0:
            return False
        if abs(measured - self.fps) <= self.fps * TOLERANCE:
            self._off = 0
            return False
        self._off += 1
        if self._off < WINDOWS:
            return False
        self._off = 0
        if abs(measured - self.nominal) <= self.nominal * TOLERANCE:
            new = self.nominal  # back to what was agreed (the light came back)
        else:
            new = float(max(1, round(measured)))
        changed = new != self.fps
        self.fps = new
        return changed
