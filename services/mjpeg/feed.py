"""One camera as the front door sees it: FrameReady from capture, the frame ring, and the
newest JPEG, made once per frame however many viewers watch and not at all when nobody does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import zmq
import zmq.asyncio

from titanium.common import formats
from titanium.common.bus import Subscriber
from titanium.common.messages import CameraStatus, FrameReady, Heartbeat
from titanium.common.ring import RingError, RingFollower, RingReader
from titanium.services.mjpeg.jpeg import encode_raw, strip_app_segments
from titanium.services.mjpeg.multipart import part

log = logging.getLogger("titanium.mjpeg.feed")
COPY_AFTER_LAP = 300  # about 10 s at 30 fps


@dataclass(frozen=True)
class JpegFrame:
    n: int  # the feed's own counter: rises across capture restarts, unlike ring seqs
    seq: int
    wall: float
    jpeg: bytes
    part: bytes
    placeholder: bool


class CameraFeed:
    """Follows one capture process and serves its newest frame as JPEG."""

    def __init__(
        self,
        camera_id: str,
        endpoint: str,
        ctx: zmq.asyncio.Context,
        quality: int,
        heartbeats: dict[str, tuple[Heartbeat, float]],
    ) -> None:
        self.camera_id = camera_id
        self.endpoint = endpoint
        self.quality = quality
        self.viewers = 0
        self.status: CameraStatus | None = None
        self.ready: FrameReady | None = None
        self.latest: JpegFrame | None = None
        self.jpeg_frames = 0  # JPEGs made or passed through
        self.missed = 0  # slots overwritten before the front door could read them
        self._heartbeats = heartbeats
        self.sub = Subscriber(ctx, [endpoint], (FrameReady, CameraStatus, Heartbeat), hwm=64)
        self._ring = RingFollower()
        self._copy = bytearray()  # where frames are copied while encodes are slow
        self._copy_frames = 0  # frames left to copy before trying zero-copy again
        # One worker per camera: JPEG work leaves the event loop, stays ordered, and the
        # ring reader is only ever touched from this thread.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"jpeg-{camera_id}")
        self._new_ready = asyncio.Event()
        self._new_frame = asyncio.Event()
        self._n = 0
        self.ending = False  # the front door is stopping: streams end

    async def run(self) -> None:
        pump = asyncio.ensure_future(self._pump())
        try:
            async for msg in self.sub:
                if isinstance(msg, FrameReady):
                    self.ready = msg
                    self._new_ready.set()
                elif isinstance(msg, CameraStatus):
                    self.status = msg
                elif isinstance(msg, Heartbeat):
                    self._heartbeats[msg.service] = (msg, time.monotonic())
        finally:
            pump.cancel()

    async def _pump(self) -> None:
        """Make the JPEG of the newest frame while anyone watches; skip the rest."""
        loop = asyncio.get_running_loop()
        done = (0, -1)
        while True:
            await self._new_ready.wait()
            self._new_ready.clear()
            ready = self.ready
            if self.viewers == 0 or ready is None or (ready.ring_id, ready.seq) == done:
                continue
            done = (ready.ring_id, ready.seq)
            frame = await loop.run_in_executor(self._pool, self._produce, ready)
            if frame is not None:
                self._publish(frame)

    def _publish(self, frame: JpegFrame) -> None:
        if self.latest is None or frame.n > self.latest.n:
            self.latest = frame
        event, self._new_frame = self._new_frame, asyncio.Event()
        event.set()

    def _produce(self, ready: FrameReady) -> JpegFrame | None:
        """Worker thread: the JPEG of ``ready``, or None when its slot was overwritten.

        Raw frames are encoded straight from shared memory and the seqlock is checked after.
        When an encode is slower than the ring's few frames (a loaded or slow board), the
        capture laps it and every such encode would be thrown away: after a lapped read the
        frame is copied out first (a memcpy, a fraction of the encode) for a while, and the
        newest frame is tried again at once.
        """
        reader = self._attach(ready)
        if reader is None:
            return None
        frame = self._encode(reader, ready, copy=self._copy_frames > 0)
        if frame is None and self._copy_frames == 0:
            self._copy_frames = COPY_AFTER_LAP
            newest = self.ready or ready
            frame = self._encode(reader, newest, copy=True)
        elif self._copy_frames:
            self._copy_frames -= 1
        return frame

    def _attach(self, ready: FrameReady) -> RingReader | None:
        try:
            return self._ring.follow(ready.ring, ready.ring_id)
        except RingError as e:
            log.warning("%s: %s", self.camera_id, e)
            return None

    def _encode(self, reader: RingReader, ready: FrameReady, copy: bool) -> JpegFrame | None:
        opened = reader.open_slot(ready.slot, ready.seq)
        if opened is None:
            self.missed += 1
            return None
        lock, info, view = opened
        checked = False
        try:
            if info.fourcc == formats.MJPG:
                jpeg = bytes(view)
            elif info.fourcc not in formats.RAW:
                log.warning("%s: no JPEG for %s frames", self.camera_id, info.fourcc)
                return None
            elif copy:
                if len(self._copy) < info.size:
                    self._copy = bytearray(info.size)
                self._copy[: info.size] = view
                if not reader.still_valid(ready.slot, lock):
                    self.missed += 1
                    return None
                checked = True
                frame = memoryview(self._copy)[: info.size]
                jpeg = encode_raw(frame, info.fourcc, info.width, info.height, self.quality)
            else:
                jpeg = encode_raw(view, info.fourcc, info.width, info.height, self.quality)
        finally:
            view.release()
        if not checked and not reader.still_valid(ready.slot, lock):
            self.missed += 1
            return None
        if info.fourcc == formats.MJPG:
            jpeg = strip_app_segments(jpeg)
        self.jpeg_frames += 1
        self._n += 1
        return JpegFrame(
            self._n, ready.seq, ready.ts_wall, jpeg, part(jpeg, ready.ts_wall), ready.placeholder
        )

    async def next_frame(self, after: int) -> JpegFrame | None:
        """The newest frame newer than ``after`` (a JpegFrame.n), waiting for it; None once
        the front door is stopping."""
        while not self.ending and (self.latest is None or self.latest.n <= after):
            await self._new_frame.wait()
        return None if self.ending else self.latest

    def end_viewers(self) -> None:
        """End every stream after the part it is writing: aiohttp's graceful shutdown
        waits for open handlers, and a stream's handler would otherwise never return."""
        self.ending = True
        self._new_frame.set()

    async def snapshot(self, timeout: float = 0.8) -> JpegFrame | None:
        """A JPEG of the newest frame: the streamed one when it is current, else made now."""
        deadline = time.monotonic() + timeout
        while self.ready is None:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.02)
        ready = self.ready
        latest = self.latest
        if latest is not None and latest.seq == ready.seq and latest.wall == ready.ts_wall:
            return latest
        frame = await asyncio.get_running_loop().run_in_executor(self._pool, self._produce, ready)
        if frame is not None:
            self._publish(frame)
        return frame or self.latest

    def close(self) -> None:
        self.sub.close()
        self._pool.shutdown(wait=True)
        self._ring.close()
