"""One camera as the front door sees it: FrameReady from capture, the frame ring, and the
newest JPEG, made once per frame however many viewers watch and not at all when nobody does.

Per frame, the camera's worker thread receives capture's FrameReady, encodes, and frames the
multipart part; the event loop is woken once, to hand that one part to every viewer. Capture's
CameraStatus and heartbeats come on a socket of their own, read by the event loop: they are
taken at once whatever the worker is doing (an encode can take 85 ms on a slow board, and a
viewer is told within 1 s that its camera is gone).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass

import zmq
import zmq.asyncio

from titanium.common import formats
from titanium.common.bus import Subscriber
from titanium.common.messages import CameraStatus, FrameReady, Heartbeat
from titanium.common.ring import RingError, RingFollower, RingReader
from titanium.services.mjpeg.fanout import Viewer
from titanium.services.mjpeg.jpeg import encode_raw, strip_app_segments
from titanium.services.mjpeg.multipart import chunk

# Tests only: seconds added to every JPEG encode, for the slow encodes of an emulated board.
ENCODE_DELAY_ENV = "TITANIUM_TEST_MJPEG_ENCODE_DELAY"

log = logging.getLogger("titanium.mjpeg.feed")
COPY_AFTER_LAP = 300  # about 10 s at 30 fps


@dataclass(frozen=True)
class JpegFrame:
    n: int  # the feed's own counter: rises across capture restarts, unlike ring seqs
    seq: int
    wall: float
    jpeg: bytes
    chunk: bytes  # the multipart part as one HTTP/1.1 chunk, for every chunked viewer
    start: int  # where the bare part starts in ``chunk`` (HTTP/1.0 viewers)
    placeholder: bool

    @property
    def part(self) -> memoryview:
        return memoryview(self.chunk)[self.start : -2]


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
        self.sub = Subscriber(ctx, [endpoint], (CameraStatus, Heartbeat))
        # FrameReady on a plain socket of the same context, read by the worker thread only,
        # which blocks on it instead of the loop waking per frame.
        self._frames = Subscriber(
            zmq.Context.shadow(ctx.underlying), [endpoint], (FrameReady,), hwm=64
        )
        self._encode_delay = float(os.environ.get(ENCODE_DELAY_ENV) or 0)
        self._ring = RingFollower()
        self._copy = bytearray()  # where frames are copied while encodes are slow
        self._copy_frames = 0  # frames left to copy before trying zero-copy again
        # One worker per camera: JPEG work leaves the event loop, stays ordered, and the
        # ring reader is only ever touched from this thread.
        self._worker: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()  # a snapshot's request, or the end
        self._stop = False
        self._snapshot_wanted = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_frame = asyncio.Event()
        self._sinks: set[Viewer] = set()
        self._n = 0
        self.ending = False  # the front door is stopping: streams end

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._worker = threading.Thread(
            target=self._follow, name=f"jpeg-{self.camera_id}", daemon=True
        )
        self._worker.start()
        try:
            async for msg in self.sub:
                if isinstance(msg, CameraStatus):
                    self.status = msg
                elif isinstance(msg, Heartbeat):
                    self._heartbeats[msg.service] = (msg, time.monotonic())
        finally:
            self._end_worker()

    def _follow(self) -> None:
        """Worker thread: take capture's FrameReady as they come, and make the JPEG of the
        newest frame while anyone watches; skip the rest."""
        poller = zmq.Poller()
        poller.register(self._frames.socket, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        done = (0, -1)
        while not self._stop:
            events = dict(poller.poll())
            if self._wake_r in events:
                os.read(self._wake_r, 64)
            self._take_waiting()
            ready = self.ready
            wanted = self.viewers > 0 or self._snapshot_wanted
            if not wanted or ready is None or (ready.ring_id, ready.seq) == done:
                continue
            self._snapshot_wanted = False
            done = (ready.ring_id, ready.seq)
            try:
                frame = self._produce(ready)
            except Exception:  # one bad frame must not end the camera's stream
                log.exception("%s: no JPEG of frame %d", self.camera_id, ready.seq)
                continue
            if frame is not None and self._loop is not None and not self._stop:
                self._loop.call_soon_threadsafe(self._publish, frame)

    def _take_waiting(self) -> None:
        """Worker thread: every FrameReady waiting now; the newest wins."""
        for msg in self._frames.drain():
            if isinstance(msg, FrameReady):
                self.ready = msg

    def _publish(self, frame: JpegFrame) -> None:
        """Event loop: the one wakeup per frame. Every viewer is handed the frame here, in
        this one callback, rather than each viewer's task being woken to write it."""
        if self.latest is not None and frame.n <= self.latest.n:
            return
        self.latest = frame
        for viewer in list(self._sinks):
            viewer.offer(frame)
        event, self._new_frame = self._new_frame, asyncio.Event()
        event.set()

    def watch(self, viewer: Viewer) -> None:
        """Offer ``viewer`` every new frame (on the loop) until :meth:`unwatch`; it starts
        on the current frame, never on one left from an earlier viewer."""
        self._sinks.add(viewer)
        latest, ready = self.latest, self.ready
        if latest is not None and ready is not None and latest.seq == ready.seq:
            viewer.offer(latest)
        if self.ending:
            viewer.end()

    def unwatch(self, viewer: Viewer) -> None:
        self._sinks.discard(viewer)

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
            self._take_waiting()
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
        elif self._encode_delay:
            time.sleep(self._encode_delay)
        self.jpeg_frames += 1
        self._n += 1
        framed, start = chunk(jpeg, ready.ts_wall)
        return JpegFrame(self._n, ready.seq, ready.ts_wall, jpeg, framed, start, ready.placeholder)

    def end_viewers(self) -> None:
        """End every stream after the part it is writing: aiohttp's graceful shutdown
        waits for open handlers, and a stream's handler would otherwise never return."""
        self.ending = True
        for viewer in list(self._sinks):
            viewer.end()

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
        if self._stop:  # stopping: the worker makes no more JPEGs, the last one will do
            return latest
        waiting = self._new_frame
        self._snapshot_wanted = True
        try:
            os.write(self._wake_w, b"s")
        except OSError:  # closed under us by the stop
            return latest
        try:
            await asyncio.wait_for(waiting.wait(), max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            pass
        return self.latest

    def _end_worker(self) -> None:
        self._stop = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def close(self) -> None:
        self._end_worker()
        self.sub.close()
        self._frames.close()
        self._ring.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1
