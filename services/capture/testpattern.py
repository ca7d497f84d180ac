"""The built-in moving test pattern: camera-like content with a timecode strip.

Frames are I420 ('YU12'). The content is a noisy, lit "print bed" with parts on it that pans
sideways, plus a bright "nozzle" moving over it, so encoders see texture and motion like a
real camera's (flat synthetic frames would flatter every cost figure). Each frame is a
window into a texture made once at start: per frame only plane copies, a small sprite and
the timecode, no per-pixel Python.
"""

from __future__ import annotations

import math
import time

import numpy as np

from titanium.common import formats
from titanium.common.service import release_free_memory
from titanium.common.timecode import draw_timecode, strip_box
from titanium.services.capture.source import CapturedFrame, SourceError, StreamFormat


def _texture(width: int, height: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Luma and chroma textures twice the frame width, which the pattern pans across."""
    tw = width * 2
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(tw, dtype=np.float32)[None, :]
    light = 70 + 90 * np.exp(-(((yy - height * 0.3) / height) ** 2) * 3)
    grid = (np.arange(tw)[None, :] % max(8, width // 20) < 2) | (
        np.arange(height)[:, None] % max(8, height // 12) < 2
    )
    luma = light - 25 * grid
    u = np.full((height // 2, tw // 2), 118, np.float32)
    v = np.full((height // 2, tw // 2), 150, np.float32)  # a warm bed surface
    for _ in range(24):  # printed parts of various colours and sizes
        w, h = rng.integers(width // 16, width // 5), rng.integers(height // 12, height // 4)
        x, y = rng.integers(0, tw - w), rng.integers(height // 4, height - h)
        luma[y : y + h, x : x + w] = rng.integers(60, 220) + 12 * np.sin(xx[:, x : x + w] / 3)
        u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = rng.integers(60, 200)
        v[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = rng.integers(60, 200)
    luma = luma + rng.normal(0, 6, luma.shape).astype(np.float32)  # sensor noise
    u += rng.normal(0, 3, u.shape).astype(np.float32)
    v += rng.normal(0, 3, v.shape).astype(np.float32)
    # Wrap seamlessly: the second half repeats the first, so any window is valid.
    planes = []
    for p in (luma, u, v):
        half = p.shape[1] // 2
        p[:, half:] = p[:, :half]
        planes.append(np.clip(p, 16, 235).astype(np.uint8))
    return tuple(planes)


class TestPatternSource:
    """A FrameSource drawing the moving pattern at the configured size and rate."""

    __test__ = False  # not a pytest test class

    def __init__(self, width: int, height: int, fps: int, seed: int = 7) -> None:
        self.description = "testpattern"
        self.width, self.height, self.fps = width, height, fps
        self.dropped = 0
        self._rng = np.random.default_rng(seed)
        self._tex: tuple[np.ndarray, ...] | None = None
        # One texture per size the governor asked for: a step back up is instant.
        self._textures: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        self._n = 0
        self._next = 0.0

    def open(self) -> StreamFormat:
        size = (self.width, self.height)
        if size not in self._textures:
            self._textures[size] = _texture(self.width, self.height, self._rng)
            release_free_memory()  # the float temporaries of the texture
        self._tex = self._textures[size]
        self._next = time.monotonic()
        frame = self.width * self.height * 3 // 2
        return StreamFormat(formats.YU12, self.width, self.height, float(self.fps), frame)

    def read_into(self, buf: memoryview, timeout: float) -> CapturedFrame:
        if self._tex is None:
            raise SourceError("test pattern is not open")
        period = 1.0 / self.fps
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
        elif now - self._next > period:  # fell behind: skip the frames we missed
            missed = int((now - self._next) / period)
            self.dropped += missed
            self._next += missed * period
        self._next += period
        mono_ns, wall = time.monotonic_ns(), time.time()
        self._draw(buf, self._n)
        draw_timecode(self._y_plane(buf), wall)
        self._n += 1
        return CapturedFrame(self.width * self.height * 3 // 2, mono_ns, int(wall * 1e9))

    def _y_plane(self, buf: memoryview) -> np.ndarray:
        return np.frombuffer(buf, np.uint8, self.width * self.height).reshape(
            self.height, self.width
        )

    def _draw(self, buf: memoryview, n: int) -> None:
        assert self._tex is not None
        w, h = self.width, self.height
        ty, tu, tv = self._tex
        x = (n * max(2, w // 300)) % w & ~1  # pan speed: ~3 % of the width a second at 30 fps
        frame = np.frombuffer(buf, np.uint8, w * h * 3 // 2)
        y = frame[: w * h].reshape(h, w)
        u = frame[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
        v = frame[w * h * 5 // 4 :].reshape(h // 2, w // 2)
        y[:] = ty[:, x : x + w]
        u[:] = tu[:, x // 2 : x // 2 + w // 2]
        v[:] = tv[:, x // 2 : x // 2 + w // 2]
        # The nozzle: a bright block on a Lissajous path, with its shadow.
        t = n / self.fps
        s = max(8, w // 24) & ~1
        nx = int((w - s) * (0.5 + 0.45 * math.sin(t * 1.3))) & ~1
        ny = int((h - s) * (0.55 + 0.35 * math.sin(t * 0.7 + 1))) & ~1
        y[ny + s // 4 : ny + s + s // 4, nx + s // 4 : nx + s + s // 4] //= 2
        y[ny : ny + s, nx : nx + s] = 225
        u[ny // 2 : (ny + s) // 2, nx // 2 : (nx + s) // 2] = 90
        v[ny // 2 : (ny + s) // 2, nx // 2 : (nx + s) // 2] = 100
        _, _, sx, sy = strip_box(w)  # keep the timecode strip grey, its chroma neutral
        u[: sy // 2, : sx // 2] = 128
        v[: sy // 2, : sx // 2] = 128

    def controls(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass
