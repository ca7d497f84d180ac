"""The encoder loop: FrameReady from capture in, H.264 access units out to the encoder's
own ring with an EncodedReady each, only while the WebRTC service or the front door says
someone watches."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable

from titanium.common import bus
from titanium.common.config import CameraConfig
from titanium.common.messages import (
    BitrateHint,
    EncoderStatus,
    FrameReady,
    Heartbeat,
    KeyframeRequest,
    Message,
    QualityCommand,
    StreamDemand,
    encode,
)
from titanium.common.ring import RingError, RingFollower, RingReader
from titanium.common.service import release_free_memory
from titanium.services.encoder.backend import (
    AccessUnit,
    BackendError,
    FrameError,
    H264Backend,
    SourceFrame,
)
from titanium.services.encoder.factory import PASSTHROUGH_FOURCCS, BackendFactory
from titanium.services.encoder.feedback import EncodeControl
from titanium.services.encoder.nal import ParameterSets
from titanium.services.encoder.output import AuRing, release

log = logging.getLogger("titanium.encoder")
STATUS_PERIOD = 1.0


class Encoder:
    """One camera's encoder: owns the output ring, the backend and the counters."""

    def __init__(
        self,
        camera: CameraConfig,
        factory: BackendFactory,
        ring_name: str,
        send: Callable[[list[bytes]], None],
        started: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera = camera
        self.factory = factory
        self.send = send  # publishes one message's frames; never blocks
        self.started = started
        self.clock = clock
        settings = factory.settings
        self.control = EncodeControl(settings.bitrate, settings.bitrate_floor)
        res = camera.resolution
        self.size = (res.width, res.height)
        self.output = AuRing(camera.id, ring_name, res.width * res.height)
        self.backend: H264Backend | None = None
        self.params = ParameterSets()
        self._extradata = b""
        self.active = False
        self.frames_in = self.frames_out = self.keyframes = self.skipped = 0
        self.frames_heard = 0  # FrameReady received, encoded or not: 0 growth while idle
        self.error = ""
        self._ring = RingFollower()
        self._force_next = False  # an IDR owed: a dropped frame broke the reference chain
        self._awaiting_key = False  # a new stream: nothing goes out before its first IDR
        self._last_status = float("-inf")
        self._frame_fps = 0.0  # the rate the last frames carried

    def on_message(self, msg: Message) -> None:
        """A StreamDemand, KeyframeRequest or BitrateHint from the WebRTC service (demand and
        keyframe requests from the front door too), or the governor's QualityCommand."""
        now = self.clock()
        if getattr(msg, "camera", None) != self.camera.id:
            return
        if isinstance(msg, StreamDemand) and msg.codec == "h264":
            self.control.demand(msg.viewers, now, msg.source)
        elif isinstance(msg, KeyframeRequest):
            self.control.keyframe_wanted(now)
        elif isinstance(msg, BitrateHint):
            self.control.bitrate_hint(msg.bitrate, now)
        elif isinstance(msg, QualityCommand):
            self._follow(msg, now)

    def _follow(self, cmd: QualityCommand, now: float) -> None:
        """A new rung: its bitrate becomes the ceiling and the next frame is an IDR, so
        every viewer sees the change from a clean start. Its size and rate need nothing
        here: capture delivers them, and the frames say so (see :meth:`_follow_rate`);
        taking the rate from the command would fight a camera that delivers less."""
        old = self.factory.settings
        new = dataclasses.replace(old, bitrate=cmd.bitrate)
        if new == old:
            return
        log.info("governor: %s, %d kbit/s (%s)", cmd.rung, cmd.bitrate // 1000, cmd.reason)
        self.factory.settings = new
        self.control.set_ceiling(new.bitrate, new.bitrate_floor)
        self.control.keyframe_wanted(now)

    def _follow_rate(self, fps: float) -> None:
        """Frames now come at ``fps``: x264's time base, GOP (frames per keyframe interval)
        and per-frame bit budget are all set for a rate, so the backend reopens with it and
        the stream restarts with an IDR."""
        rate = max(1, round(fps))
        old = self.factory.settings
        if rate == old.fps:
            return
        log.info("frames come at %.3g fps (was %d): reopening the encoder for it", fps, old.fps)
        self.factory.settings = dataclasses.replace(old, fps=rate)
        self._close_backend()

    def idle_check(self) -> bool:
        """Track demand; returns whether to encode. Going idle closes the backend so an
        unwatched camera holds no encoder memory."""
        active = self.control.active(self.clock())
        if active and not self.active:
            log.info("encoding: %d viewer(s)", self.control.viewers)
        elif self.active and not active:
            log.info("idle: nobody watches")
            self.control.went_idle()
            self._close_backend()
            release_free_memory()
        self.active = active
        return active

    def on_frame(self, ready: FrameReady, behind: int = 0) -> None:
        """Encode the newest frame; ``behind`` older ones were passed over to get to it."""
        if not self.idle_check():
            return
        self.skipped += behind
        reader = self._attach(ready)
        opened = reader.open_slot(ready.slot, ready.seq) if reader else None
        if reader is None or opened is None:
            self.skipped += 1
            return
        lock, info, view = opened
        now = self.clock()
        # 0: an offline or paused frame, no steady rate to follow.
        if ready.fps > 0 and ready.fps != self._frame_fps:
            self._frame_fps = ready.fps
            self._follow_rate(ready.fps)
        force = self.control.force_idr(now) or self._force_next
        self._force_next = force  # owed until a frame makes it through
        bitrate = self.control.next_bitrate(now)
        try:
            backend = self._backend_for(info.fourcc, info.width, info.height)
            if bitrate is not None:
                log.info("bitrate %d kbit/s", bitrate // 1000)
                backend.set_bitrate(bitrate)
            frame = SourceFrame(
                view, info.fourcc, info.width, info.height, info.mono_ns, info.wall_ns
            )
            units = backend.encode(frame, force)
        except FrameError as e:
            self._fail(str(e))
            return
        except BackendError as e:
            self._fail(str(e))
            if self.backend is not None:
                self.factory.failed(self.backend.name, str(e))
            self._close_backend()
            return
        finally:
            release(view)
        self.frames_in += 1
        if not reader.still_valid(ready.slot, lock):
            # Capture lapped us while we read: what was encoded may be torn. Dropping it
            # breaks the decoder's reference chain, so the next frame must be an IDR.
            self.skipped += 1
            self._force_next = True
            return
        self._force_next = False
        self.error = "" if not self.factory.failures else self.factory.error
        extradata = getattr(backend, "extradata", b"")
        if extradata != self._extradata:  # the backend reopened (new size or bitrate)
            self._new_parameter_sets(extradata)
        for unit in units:
            self._emit(unit, info.width, info.height, now)

    def _fail(self, message: str) -> None:
        self._note(message)
        self.skipped += 1

    def _note(self, message: str) -> None:
        if message != self.error:  # log the cause once, not on every frame
            log.warning("%s", message)
        self.error = message

    def _attach(self, ready: FrameReady) -> RingReader | None:
        try:
            return self._ring.follow(ready.ring, ready.ring_id)
        except RingError as e:
            self._note(str(e))
            return None

    def _backend_for(self, fourcc: str, width: int, height: int) -> H264Backend:
        backend = self.backend
        if backend is not None and (backend.name == "passthrough") != (
            fourcc in PASSTHROUGH_FOURCCS
        ):
            log.info("source changed to %s: switching backend", fourcc)
            self._close_backend()
            backend = None
        if backend is None:
            backend = self.backend = self.factory.make(fourcc, width, height)
            self._awaiting_key = True
            if backend.bitrate != self.control.bitrate:  # hints outlive a backend
                backend.set_bitrate(self.control.bitrate)
            self._new_parameter_sets(b"")
        return backend

    def _new_parameter_sets(self, extradata: bytes) -> None:
        """A new stream has its own SPS/PPS: the old ones must never go in front of its
        IDRs. A hardware encoder may carry them only in its extradata."""
        self.params = ParameterSets()
        self.params.observe(extradata)
        self._extradata = extradata

    def _close_backend(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    def _emit(self, unit: AccessUnit, width: int, height: int, now: float) -> None:
        data, keyframe = self.params.complete(unit.data)
        if self._awaiting_key and not keyframe:
            self.skipped += 1
            return
        if keyframe:
            self._awaiting_key = False
            self.keyframes += 1
            self.control.idr_sent(now)
        self.frames_out += 1
        self.size = (width, height)
        self._publish(self.output.write(data, keyframe, width, height, unit.mono_ns, unit.wall_ns))

    def tick(self) -> None:
        """Publish EncoderStatus and a Heartbeat about once a second."""
        now = self.clock()
        if now - self._last_status < STATUS_PERIOD:
            return
        self._last_status = now
        self.idle_check()
        self._publish(self.status())
        detail = f"encoding for {self.control.viewers}" if self.active else "idle"
        self._publish(
            Heartbeat(
                f"encoder-{self.camera.id}",
                os.getpid(),
                self.started,
                detail=detail,
                **bus.losses(),
            )
        )

    def status(self) -> EncoderStatus:
        return EncoderStatus(
            camera=self.camera.id,
            backend=self.backend.name if self.backend else "",
            active=self.active,
            width=self.size[0],
            height=self.size[1],
            bitrate=self.backend.bitrate if self.backend else self.control.bitrate,
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            keyframes=self.keyframes,
            skipped=self.skipped,
            error=self.error,
            fps=self.factory.settings.fps,
            frames_heard=self.frames_heard,
        )

    def _publish(self, msg: Message) -> None:
        self.send(encode(msg))

    def close(self) -> None:
        self._close_backend()
        self._ring.close()
        self.output.close()
