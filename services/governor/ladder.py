"""A camera's quality ladder: its configured size and rate on top (capped by
``titanium.streaming.default_quality`` when that names a lower profile), then the configured
steps (``titanium.governor.ladder``, 1080p30 → 720p30 → 720p15 → 480p15 → 360p5 by
default) that are below it, and "paused" at the bottom.

A step above the camera is clamped to it (a 640x480 camera gets 480p30 → 480p15 → 360p5),
so every camera has somewhere to go. Sizes keep the camera's aspect ratio and stay even
(4:2:0 needs it); bitrates shrink with the pixel rate, a little less than proportionally
(small pictures need more bits per pixel), never below the encoder's floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from titanium.common.config import CameraConfig, floored_bitrate
from titanium.common.govconfig import RungSpec

PAUSED = "paused"
PAUSED_FPS = 1  # the "paused" frame is refreshed once a second


@dataclass(frozen=True)
class Rung:
    label: str  # '720p15', 'paused'
    width: int
    height: int
    fps: int
    bitrate: int  # bit/s
    paused: bool = False

    def describe(self) -> dict[str, object]:
        return {
            "rung": self.label,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "bitrate": self.bitrate,
            "paused": self.paused,
        }


@dataclass(frozen=True)
class Ladder:
    rungs: tuple[Rung, ...]  # best first, "paused" last

    @property
    def paused(self) -> int:
        return len(self.rungs) - 1

    @property
    def lowest_live(self) -> int:
        return len(self.rungs) - 2

    def index(self, label: str) -> int:
        for i, rung in enumerate(self.rungs):
            if rung.label == label:
                return i
        raise KeyError(label)

    def floor(self, spec: RungSpec) -> int:
        """The best rung no better than ``spec`` (the first-layer limit)."""
        for i, rung in enumerate(self.rungs[:-1]):
            if rung.height <= spec.height and rung.fps <= spec.fps:
                return i
        return self.lowest_live

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.rungs]


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def build_ladder(
    camera: CameraConfig, specs: Sequence[RungSpec], best: RungSpec | None = None
) -> Ladder:
    """``best`` (the default quality) caps the top: the camera's rung gives way to it."""
    width, height, fps = camera.resolution.width, camera.resolution.height, camera.fps
    top_bitrate = camera.bitrate_bps
    rungs = [Rung(f"{height}p{fps}", width, height, fps, top_bitrate)]
    for spec in (best, *specs) if best else specs:
        h, f = min(_even(spec.height), height), min(spec.fps, fps)
        last = rungs[-1]
        if (h, f) == (last.height, last.fps) or h > last.height or f > last.fps:
            continue
        w = width if h == height else _even(width * h / height)
        share = (w * h * f) / (width * height * fps)
        bitrate = floored_bitrate(int(top_bitrate * share**0.75), top_bitrate)
        rungs.append(Rung(f"{h}p{f}", w, h, f, bitrate))
    if best and (height > best.height or fps > best.fps):
        rungs.pop(0)  # the camera's own rung is above the default quality
    low = rungs[-1]
    rungs.append(Rung(PAUSED, low.width, low.height, PAUSED_FPS, low.bitrate, paused=True))
    return Ladder(tuple(rungs))
