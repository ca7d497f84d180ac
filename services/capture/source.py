"""The FrameSource protocol: what the capture loop needs from a camera, a test pattern or a
file (factory.py picks one from config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class SourceError(RuntimeError):
    """The source cannot deliver frames now (unplugged, busy, failed); capture retries."""


class SourceConfigError(SourceError):
    """The source cannot do what the config asks (size, format, control): retrying the same
    request will not help, the message says what the device offers."""


@dataclass(frozen=True)
class StreamFormat:
    fourcc: str  # 'MJPG', 'YUYV', 'YU12', 'NV12'
    width: int
    height: int
    fps: float
    frame_capacity: int  # largest frame in bytes


@dataclass(frozen=True)
class CapturedFrame:
    size: int
    mono_ns: int
    wall_ns: int


class FrameSource(Protocol):
    """A camera-like source. ``open`` starts streaming and tells the negotiated format;
    ``read_into`` blocks until the next frame is in ``buf`` (at most ``timeout`` seconds,
    else SourceError); ``close`` may be called at any time, more than once.

    ``width``, ``height`` and ``fps`` are what the next ``open`` asks for: capture sets them
    between a ``close`` and an ``open`` to follow the governor."""

    description: str
    dropped: int  # frames the device produced that were lost before reaching us
    width: int
    height: int
    fps: int

    def open(self) -> StreamFormat: ...

    def read_into(self, buf: memoryview, timeout: float) -> CapturedFrame: ...

    def controls(self) -> dict[str, int]: ...

    def close(self) -> None: ...
