"""The encoder loop without sockets: frames from a real capture ring, a fake backend, the
messages it would publish collected in a list."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.unit.encoder_frames import NullBackend, settings
from titanium.common.config import parse_config
from titanium.common.messages import (
    EncodedReady,
    EncoderStatus,
    FrameReady,
    Heartbeat,
    KeyframeRequest,
    Message,
    StreamDemand,
    decode,
)
from titanium.common.ring import SHM_DIR, RingReader, RingWriter
from titanium.services.encoder.backend import AccessUnit, EncoderSettings, SourceFrame
from titanium.services.encoder.factory import BackendFactory
from titanium.services.encoder.loop import Encoder

CAMERA = parse_config({"titanium": {"cameras": [{"id": "cam0", "resolution": "64x48"}]}}).cameras[0]
RAW = b"\x80" * (64 * 48 * 3 // 2)
P_SLICE = b"\x00\x00\x00\x01\x41\x9a"
IDR = b"\x00\x00\x00\x01\x67\x42\xc0\x1f\x00\x00\x00\x01\x68\xce\x00\x00\x01\x65\x88"


class Rig:
    """A capture ring to write frames into, an Encoder on it, and a hand-driven clock."""

    def __init__(self, backend: NullBackend) -> None:
        tag = uuid.uuid4().hex[:8]
        self.capture = RingWriter.create(f"titanium-test-{tag}-raw", 4, 64 * 48 * 2)
        self.now = 100.0
        self.sent: list[Message] = []
        self.backend = backend
        factory = BackendFactory("auto", settings(), self._open)
        self.encoder = Encoder(
            CAMERA,
            factory,
            f"titanium-test-{tag}-h264",
            lambda frames: self.sent.append(decode(frames)),
            started=0.0,
            clock=lambda: self.now,
        )

    def _open(self, name: str, s: EncoderSettings, width: int, height: int) -> NullBackend:
        self.backend.name = name
        return self.backend

    def frame(self, payload: bytes = RAW, fourcc: str = "YU12", fps: float = 0.0) -> FrameReady:
        view = self.capture.begin()
        view[: len(payload)] = payload
        view.release()
        mono, wall = int(self.now * 1e9), time.time_ns()
        slot, seq = self.capture.commit(len(payload), fourcc, 64, 48, mono, wall)
        ready = FrameReady(
            "cam0",
            self.capture.name,
            self.capture.ring_id,
            slot,
            seq,
            fourcc,
            64,
            48,
            wall / 1e9,
            fps=fps,
        )
        return ready

    def step(
        self, behind: int = 0, payload: bytes = RAW, fourcc: str = "YU12", fps: float = 0.0
    ) -> None:
        self.encoder.on_frame(self.frame(payload, fourcc, fps), behind)
        self.now += 1 / 32  # exact in binary: 16 frames are 0.5 s

    def watch(self, viewers: int = 1) -> None:
        self.encoder.on_message(StreamDemand("cam0", "h264", viewers))

    def encoded(self) -> list[EncodedReady]:
        return [m for m in self.sent if isinstance(m, EncodedReady)]

    def close(self) -> None:
        self.encoder.close()
        self.capture.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig(NullBackend())
    yield r
    r.close()


def test_nothing_is_encoded_while_nobody_watches(rig: Rig) -> None:
    for _ in range(5):
        rig.step()
    assert rig.encoded() == [] and rig.backend.forced == []
    assert rig.encoder.status().frames_in == 0


def test_watching_starts_with_a_keyframe_in_the_ring_with_capture_times(rig: Rig) -> None:
    rig.watch()
    for _ in range(3):
        rig.step()
    msgs = rig.encoded()
    assert [m.keyframe for m in msgs] == [True, False, False]
    assert rig.backend.forced == [True, False, False]
    first = msgs[0]
    reader = RingReader.attach(first.ring)
    got = reader.read(first.slot, first.seq)
    assert got is not None and got[1] == IDR and got[0].keyframe and got[0].fourcc == "H264"
    assert first.pts == got[0].mono_ns * 9 // 100_000
    assert first.ts_wall == pytest.approx(got[0].wall_ns / 1e9)
    reader.close()


def test_newest_frame_wins_and_passed_over_frames_are_counted(rig: Rig) -> None:
    rig.watch()
    rig.step()
    rig.step(behind=3)
    st = rig.encoder.status()
    assert (st.frames_in, st.frames_out, st.skipped) == (2, 2, 3)


def test_a_frame_overwritten_while_encoding_is_dropped_and_the_next_is_an_idr() -> None:
    class Lapping(NullBackend):
        lap: Callable[[], None] = staticmethod(lambda: None)

        def encode(self, frame: SourceFrame, force_idr: bool) -> list[AccessUnit]:
            out = super().encode(frame, force_idr)
            if len(self.forced) == 3:
                self.lap()
            return out

    backend = Lapping()
    lapped = Rig(backend)

    def lap() -> None:  # capture laps the 4-slot ring while the third frame encodes
        for _ in range(4):
            lapped.frame()

    backend.lap = lap
    try:
        lapped.watch()
        for _ in range(5):
            lapped.step()
        assert backend.forced == [True, False, False, True, False]
        assert len(lapped.encoded()) == 4 and lapped.encoder.status().skipped == 1
    finally:
        lapped.close()


def test_keyframe_requests_for_this_camera_force_an_idr_rate_limited(rig: Rig) -> None:
    rig.watch()
    rig.step()
    rig.encoder.on_message(KeyframeRequest("cam1", "pli"))
    rig.encoder.on_message(KeyframeRequest("cam0", "pli"))
    for _ in range(20):
        rig.step()
    assert [i for i, f in enumerate(rig.backend.forced) if f] == [0, 16]  # 0.5 s later


def test_going_idle_closes_the_backend_and_status_says_so(rig: Rig) -> None:
    rig.watch()
    rig.step()
    assert rig.encoder.status().backend == "h264_v4l2m2m"
    rig.now += 3.5  # the WebRTC service went silent
    rig.encoder.tick()
    assert rig.backend.closed
    status = [m for m in rig.sent if isinstance(m, EncoderStatus)][-1]
    assert (status.active, status.backend, status.frames_out) == (False, "", 1)
    beat = [m for m in rig.sent if isinstance(m, Heartbeat)][-1]
    assert (beat.service, beat.detail) == ("encoder-cam0", "idle")


def test_passthrough_waits_for_the_cameras_idr(rig: Rig) -> None:
    class Camera(NullBackend):
        def encode(self, frame: SourceFrame, force_idr: bool) -> list[AccessUnit]:
            self.forced.append(force_idr)
            return [AccessUnit(bytes(frame.data), False, frame.mono_ns, frame.wall_ns)]

    rig.backend = Camera()
    rig.watch()
    for payload in (P_SLICE, P_SLICE, IDR, P_SLICE):
        rig.step(payload=payload, fourcc="H264")
    assert rig.encoder.status().backend == "passthrough"
    assert [m.keyframe for m in rig.encoded()] == [True, False]
    assert rig.encoder.status().skipped == 2


def test_rings_are_unlinked_on_close() -> None:
    rig = Rig(NullBackend())
    name = rig.encoder.output.ring.name
    assert (SHM_DIR / name).exists()
    rig.close()
    assert not (SHM_DIR / name).exists()
