"""The capture loop: frames from a FrameSource into the camera's ring, a FrameReady for each
on the bus, and the "camera offline" frame with retries when the source fails.

The governor's QualityCommand is polled between frames: a new size or rate reopens the
source with it (the test pattern and file sources draw at any size; a V4L2 camera is
renegotiated, and one that refuses the size keeps its configured size while frames are
thinned to the rate); a pause closes the source and shows a "stream paused" frame once a
second, so viewers keep their connections and see why.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import zmq

from titanium.common import bus, formats
from titanium.common.bus import Publisher, Subscriber
from titanium.common.config import CameraConfig
from titanium.common.messages import (
    CameraStatus,
    FrameReady,
    Heartbeat,
    Message,
    QualityCommand,
)
from titanium.common.ring import FLAG_PLACEHOLDER, RingWriter
from titanium.services.capture.placeholder import Placeholder
from titanium.services.capture.quality import Follower, Orders
from titanium.services.capture.rate import DeliveredRate
from titanium.services.capture.source import (
    FrameSource,
    SourceConfigError,
    SourceError,
    StreamFormat,
)

log = logging.getLogger("titanium.capture")
RING_SLOTS = 4
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 5.0
STATUS_PERIOD = 1.0


class Capture:
    """Owns one camera's source, ring and publisher socket."""

    def __init__(
        self,
        camera: CameraConfig,
        source: FrameSource,
        ring_name: str,
        pub: Publisher,
        started: float,
        orders: Orders | None = None,
    ) -> None:
        self.camera = camera
        self.source = source
        self.ring_name = ring_name
        self.pub = pub
        self.started = started
        self.ring: RingWriter | None = None
        self.format: StreamFormat | None = None
        self.online = False
        self.error = ""
        self.frames = 0
        self._placeholder = Placeholder(camera.resolution.width, camera.resolution.height)
        self.follow = Follower(camera, orders or Orders(camera.id, None))
        self._paused_frame: Placeholder | None = None
        self._window_frames = 0
        self._window_start = time.monotonic()
        self._fps = 0.0
        self.rate = DeliveredRate()
        self._last_status = 0.0

    def run(self, stopping: threading.Event) -> None:
        res = self.camera.resolution
        self._ensure_ring(res.width * res.height * 2)
        backoff = BACKOFF_FIRST
        try:
            while not stopping.is_set():
                self.follow.poll()
                if self.follow.target.paused:
                    self._pause(stopping)
                    continue
                resized = self.follow.fit(self.source)
                try:
                    self.format = self.source.open()
                except SourceConfigError as e:
                    if resized:  # the size is the governor's, not the user's: go on without it
                        self.follow.cannot_resize(e)
                        continue
                    self._offline(e)
                    self._wait_offline(stopping, backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                except SourceError as e:
                    self._offline(e)
                    self._wait_offline(stopping, backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                backoff = BACKOFF_FIRST
                self._ensure_ring(self.format.frame_capacity)
                self.online, self.error = True, ""
                log.info(
                    "%s streaming %s %dx%d at %.3g fps%s",
                    self.source.description,
                    self.format.fourcc,
                    self.format.width,
                    self.format.height,
                    self.format.fps,
                    self.follow.opened(self.format.fps),
                )
                # A new rung shows in /status at once, not up to STATUS_PERIOD later; the
                # measured rate starts over with it.
                self.rate.start(self.follow.pacer.fps or self.format.fps)
                self._window_frames, self._window_start = 0, time.monotonic()
                self._maybe_status(force=True)
                try:
                    self._stream(stopping)
                except SourceError as e:
                    self._offline(e)
                finally:
                    self.source.close()
        finally:
            self.source.close()
            if self.ring is not None:
                self.ring.close()

    def _pause(self, stopping: threading.Event) -> None:
        """Source closed; a "stream paused" frame each second until the governor resumes."""
        self.source.close()
        self.online, self.error = True, ""
        t = self.follow.target
        if self._paused_frame is None or (self._paused_frame.width, self._paused_frame.height) != (
            t.width,
            t.height,
        ):
            self._paused_frame = Placeholder(
                t.width, t.height, "STREAM PAUSED", "TO PROTECT THE PRINT"
            )
        self._ensure_ring(t.width * t.height * 2)
        while not stopping.is_set():
            self._publish_placeholder(self._paused_frame)
            deadline = time.monotonic() + 1.0
            while not stopping.wait(0.05):  # a resume shows within 50 ms
                if self.follow.poll():
                    return
                if time.monotonic() >= deadline:
                    break

    def _stream(self, stopping: threading.Event) -> None:
        assert self.ring is not None and self.format is not None
        fmt = self.format
        timeout = max(0.8, 2.5 / fmt.fps)  # the offline frame must show within 1 s
        while not stopping.is_set():
            if self.follow.poll():
                return
            view = self.ring.begin()
            try:
                frame = self.source.read_into(view, timeout)
            except BaseException:
                self.ring.abort()
                raise
            finally:
                _release(view)
            if not self.follow.pacer.take(frame.mono_ns):
                self.ring.abort()
                continue
            self._commit(
                frame.size, fmt.fourcc, fmt.width, fmt.height, frame.mono_ns, frame.wall_ns
            )
            self.frames += 1
            self._window_frames += 1
            self._maybe_status()

    def _ensure_ring(self, capacity: int) -> None:
        if self.ring is not None and self.ring.capacity >= capacity:
            return
        if self.ring is not None:
            log.info("frames need %d bytes, more than the ring's slots: new ring", capacity)
            self.ring.close()
        self.ring = RingWriter.create(self.ring_name, RING_SLOTS, capacity)

    def _offline(self, error: SourceError) -> None:
        message = str(error)
        if message != self.error:  # log the cause once, not on every retry
            level = logging.ERROR if isinstance(error, SourceConfigError) else logging.WARNING
            log.log(level, "camera offline: %s", message)
        self.online, self.error = False, message
        self.source.close()
        self._publish_placeholder(self._placeholder)

    def _wait_offline(self, stopping: threading.Event, seconds: float) -> None:
        """Wait ``seconds`` before the next retry, refreshing the offline frame each second."""
        deadline = time.monotonic() + seconds
        while not stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if stopping.wait(min(left, 1.0)):
                return
            self._publish_placeholder(self._placeholder)

    def _publish_placeholder(self, placeholder: Placeholder) -> None:
        assert self.ring is not None
        wall = time.time()
        jpeg = placeholder.jpeg(wall)
        view = self.ring.begin()
        view[: len(jpeg)] = jpeg
        _release(view)
        w, h = placeholder.width, placeholder.height
        self._commit(len(jpeg), formats.MJPG, w, h, time.monotonic_ns(), int(wall * 1e9), True)
        self._maybe_status(force=True)

    def _commit(
        self,
        size: int,
        fourcc: str,
        width: int,
        height: int,
        mono_ns: int,
        wall_ns: int,
        placeholder: bool = False,
    ) -> None:
        """Commit the slot being written and announce it."""
        assert self.ring is not None
        flags = FLAG_PLACEHOLDER if placeholder else 0
        slot, seq = self.ring.commit(size, fourcc, width, height, mono_ns, wall_ns, flags)
        self._publish(
            FrameReady(
                self.camera.id,
                self.ring.name,
                self.ring.ring_id,
                slot,
                seq,
                fourcc,
                width,
                height,
                wall_ns / 1e9,
                placeholder=placeholder,
                fps=0.0 if placeholder else self.rate.fps,
            )
        )

    def _maybe_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < STATUS_PERIOD:
            return
        elapsed = now - self._window_start
        if elapsed >= STATUS_PERIOD:
            self._fps = self._window_frames / elapsed
            self._window_frames, self._window_start = 0, now
            if self.online and not force and self.rate.window(self._fps):
                log.info(
                    "frames arrive at %.3g fps, not the %.3g negotiated: telling the encoder",
                    self.rate.fps,
                    self.rate.nominal,
                )
        if not self.online:
            self._fps = 0.0
        self._last_status = now
        self._publish(self.status())
        self._publish(
            Heartbeat(f"capture-{self.camera.id}", os.getpid(), self.started, **bus.losses())
        )

    def status(self) -> CameraStatus:
        paused = self.follow.target.paused
        fmt = None if paused else self.format
        res = self.follow.target if paused else self.camera.resolution
        return CameraStatus(
            camera=self.camera.id,
            source=self.source.description,
            online=self.online,
            fourcc=fmt.fourcc if fmt else (formats.MJPG if paused else ""),
            width=fmt.width if fmt else res.width,
            height=fmt.height if fmt else res.height,
            fps_configured=float(self.camera.fps),
            fps_measured=round(self._fps, 2),
            frames=self.frames,
            dropped=self.source.dropped,
            error=self.error,
            controls=self.source.controls() if self.online and not paused else {},
            paused=paused,
            fps=self.rate.fps if fmt and self.online else 0.0,
        )

    def _publish(self, msg: Message) -> None:
        self.pub.publish(msg)  # never blocks capture


def _release(view: memoryview) -> None:
    try:
        view.release()
    except BufferError:  # a numpy view of it is still alive; it goes with the garbage
        pass


def run_capture(
    camera: CameraConfig,
    source: FrameSource,
    ring_name: str,
    pub_endpoint: str,
    stopping: threading.Event,
    started: float,
    orders_endpoint: str | None = None,
) -> None:
    """Bind the publisher, follow the governor's commands from ``orders_endpoint`` (its
    PUB), and run the loop until ``stopping`` is set."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, pub_endpoint, hwm=64)
    sub = None
    if orders_endpoint is not None:
        sub = Subscriber(ctx, [orders_endpoint], (QualityCommand,))
    try:
        Capture(camera, source, ring_name, pub, started, Orders(camera.id, sub)).run(stopping)
    finally:
        pub.close()
        if sub is not None:
            sub.close()
        ctx.term()
