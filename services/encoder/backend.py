"""The H.264 backend interface: what every backend is opened with, what it is fed and
what it returns. factory.py picks one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from titanium.common.config import CameraConfig, floored_bitrate


class BackendError(RuntimeError):
    """A backend cannot open or cannot go on; the loop asks the factory for another."""


class FrameError(ValueError):
    """One source frame cannot be used (a corrupt JPEG, an unknown format); skip it."""


@dataclass(frozen=True)
class EncoderSettings:
    """What every backend is opened with, from the camera's config."""

    fps: int
    bitrate: int  # bit/s, the ceiling bitrate hints move under
    keyframe_interval: float  # seconds

    @property
    def gop(self) -> int:
        """Frames from one IDR to the next."""
        return max(1, round(self.keyframe_interval * self.fps))

    @property
    def bitrate_floor(self) -> int:
        """The lowest bitrate hints may push this stream to: an eighth of its ceiling."""
        return floored_bitrate(self.bitrate // 8, self.bitrate)

    @classmethod
    def of(cls, camera: CameraConfig) -> EncoderSettings:
        return cls(camera.fps, camera.bitrate_bps, camera.keyframe_interval)


@dataclass(frozen=True)
class SourceFrame:
    """One frame from the capture ring. ``data`` is a zero-copy view of the slot, valid
    only during :meth:`H264Backend.encode`."""

    data: memoryview
    fourcc: str  # 'YU12', 'NV12', 'YUYV', 'MJPG', 'H264'
    width: int
    height: int
    mono_ns: int
    wall_ns: int


class AccessUnit(NamedTuple):
    """One encoded picture in Annex B form, with the capture times of its source frame
    (a backend with pipeline delay returns the AU of an earlier frame)."""

    data: bytes
    keyframe: bool
    mono_ns: int
    wall_ns: int


class H264Backend(Protocol):
    """Turns source frames into H.264 access units (constrained baseline, SPS/PPS in front
    of every IDR, no B-frames: each AU is ready to send as soon as it is returned)."""

    name: str  # 'libx264', 'h264_v4l2m2m', 'passthrough'
    bitrate: int  # current target, bit/s

    def encode(self, frame: SourceFrame, force_idr: bool) -> list[AccessUnit]:
        """The AUs that are ready after ``frame``; ``force_idr`` makes this frame an IDR.
        Raises FrameError for an unusable frame, BackendError when the codec fails."""
        ...

    def set_bitrate(self, bitrate: int) -> None:
        """Aim at ``bitrate`` bit/s from the next frame on."""
        ...

    def close(self) -> None: ...
