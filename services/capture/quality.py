"""What capture takes from the governor: the size, rate and pause of its QualityCommand,
polled between frames without blocking, and a pacer that thins frames when the source
cannot lower its own rate."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from titanium.common.bus import Subscriber
from titanium.common.config import CameraConfig
from titanium.common.messages import QualityCommand
from titanium.services.capture.source import FrameSource, SourceError

log = logging.getLogger("titanium.capture")


@dataclass(frozen=True)
class Target:
    """What capture should deliver now."""

    width: int
    height: int
    fps: int
    paused: bool = False
    reason: str = ""

    @classmethod
    def configured(cls, camera: CameraConfig) -> Target:
        return cls(camera.resolution.width, camera.resolution.height, camera.fps)

    def same_stream(self, other: Target) -> bool:
        return (self.width, self.height, self.fps, self.paused) == (
            other.width,
            other.height,
            other.fps,
            other.paused,
        )


class Orders:
    """The governor's commands for one camera, from a SUB socket (None: no governor)."""

    def __init__(self, camera_id: str, sub: Subscriber | None) -> None:
        self.camera_id = camera_id
        self.sub = sub

    def poll(self) -> Target | None:
        """The newest command waiting for this camera, as a Target; None when none came."""
        if self.sub is None:
            return None
        newest: Target | None = None
        for cmd in self.sub.drain():
            if isinstance(cmd, QualityCommand) and cmd.camera == self.camera_id:
                newest = Target(cmd.width, cmd.height, cmd.fps, cmd.paused, cmd.reason)
        return newest


class Pacer:
    """Lets through at most ``fps`` frames a second of a faster source, evenly: a camera
    that cannot be asked for a lower rate still costs the encoder and viewers only what
    the governor allows."""

    def __init__(self, fps: float) -> None:
        self.fps = fps  # 0: lets everything through
        self.period_ns = int(1e9 / fps) if fps > 0 else 0
        self._next = 0

    JITTER_NS = 4_000_000  # a frame due a few ms early is on time, not one to skip

    def take(self, mono_ns: int) -> bool:
        if not self.period_ns:
            return True
        if mono_ns < self._next - self.JITTER_NS:
            return False
        # Keep the cadence, but never try to catch up on a gap (after a stall).
        self._next = max(self._next + self.period_ns, mono_ns + self.period_ns // 2)
        return True


class Follower:
    """The governor's commands as capture follows them: the target now, whether the source
    refused a size it was asked for, and the pacer for the stream being read."""

    def __init__(self, camera: CameraConfig, orders: Orders) -> None:
        self.camera = camera
        self.orders = orders
        self.target = Target.configured(camera)
        self.fixed_size = False  # the source refused a size the governor asked for
        self.pacer = Pacer(0)

    def poll(self) -> bool:
        """Take a waiting command; True when it needs the source reopened (or closed)."""
        new = self.orders.poll()
        if new is None or new.same_stream(self.target):
            return False
        log.info(
            "governor: %s (%s)",
            "pause" if new.paused else f"{new.width}x{new.height} at {new.fps} fps",
            new.reason,
        )
        self.target = new
        return True

    def fit(self, source: FrameSource) -> bool:
        """Ask ``source`` for the target's size and rate before it opens; True when the
        size is not the configured one (a refusal is then the governor's problem, not a
        broken camera)."""
        res = self.camera.resolution
        t = self.target
        width, height = (res.width, res.height) if self.fixed_size else (t.width, t.height)
        source.width, source.height, source.fps = width, height, t.fps
        return (width, height) != (res.width, res.height)

    def cannot_resize(self, error: SourceError) -> None:
        log.warning(
            "the camera cannot change size (%s): it stays at %s, only its rate follows "
            "the governor",
            error,
            self.camera.resolution,
        )
        self.fixed_size = True

    def opened(self, fps: float) -> str:
        """The source runs at ``fps``: one that cannot slow down (a camera's fixed rate) is
        thinned to the target. Returns what to add to the log line."""
        thin = fps > self.target.fps * 1.05
        self.pacer = Pacer(self.target.fps if thin else 0)
        return f", thinned to {self.target.fps}" if thin else ""
