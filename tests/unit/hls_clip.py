"""A short real H.264 clip for the LL-HLS tests: the project's libx264 backend on the
capture test pattern, each AU with the pts and wall time the encoder would announce."""

from __future__ import annotations

from typing import NamedTuple

from tests.unit.encoder_frames import Pattern, settings
from titanium.services.encoder.pyav import Libx264Backend

WALL0 = 1_780_000_000.0  # a fixed capture clock, so date-times are checkable


class Au(NamedTuple):
    data: bytes
    pts: int  # 90 kHz
    keyframe: bool
    wall: float


def clip(
    frames: int, fps: int = 30, keyframe_interval: float = 1.0, size: tuple[int, int] = (320, 240)
) -> list[Au]:
    """``frames`` AUs, an IDR every ``keyframe_interval`` seconds, pts on the frame clock
    (as output.py derives it from each capture's monotonic time)."""
    pattern = Pattern(*size, fps)
    backend = Libx264Backend(settings(fps, 500, keyframe_interval), *size)
    out = []
    for n in range(frames):
        for unit in backend.encode(pattern.frame("YU12", n, fps), False):
            pts = unit.mono_ns * 9 // 100_000
            wall = WALL0 + (unit.mono_ns - 1_000_000_000) / 1e9
            out.append(Au(unit.data, pts, unit.keyframe, wall))
    backend.close()
    return out
