"""The real capture and encoder processes on a temporary runtime dir, with this test in the
WebRTC service's place: a PUB at ``webrtc_pub()`` sending StreamDemand and KeyframeRequest,
and a SUB on the encoder reading what it publishes and the AUs from its ring."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest
import zmq

from tests.integration.conftest import Stack
from titanium.common.endpoints import Endpoints
from titanium.common.messages import (
    EncodedReady,
    EncoderStatus,
    FrameReady,
    Heartbeat,
    KeyframeRequest,
    Message,
    StreamDemand,
    decode,
    encode,
)
from titanium.common.ring import SHM_DIR, RingReader
from titanium.common.timecode import read_timecode


class Service:
    """One ``python -m titanium.services.NAME`` child; its output is kept for failures."""

    def __init__(self, name: str, config: Path) -> None:
        self.output: deque[str] = deque(maxlen=200)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"titanium.services.{name}", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Pipeline:
    """capture + encoder on the test pattern, a demand sender and listeners."""

    def __init__(self, tmp: Path, keyframe_interval: float = 10) -> None:
        self.endpoints = Endpoints(tmp / "run")
        self.config = tmp / "titanium.json"
        camera = {"device": "testpattern", "resolution": "640x480", "fps": 30}
        camera.update(keyframe_interval=keyframe_interval, bitrate=1000, encoder="auto")
        doc = {"titanium": {"cameras": [camera], "runtime_dir": str(self.endpoints.runtime_dir)}}
        self.config.write_text(json.dumps(doc))
        self.endpoints.runtime_dir.mkdir()
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.bind(self.endpoints.webrtc_pub())
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(self.endpoints.encoder_pub("cam0"))
        self.frames = self.ctx.socket(zmq.SUB)
        self.frames.setsockopt(zmq.SUBSCRIBE, FrameReady.TOPIC)
        self.frames.connect(self.endpoints.capture_pub("cam0"))
        self.viewers = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.capture = Service("capture", self.config)
        self.encoder = Service("encoder", self.config)
        threading.Thread(target=self._demand, daemon=True).start()
        self.wait_for(lambda m: isinstance(m, EncoderStatus), 20)

    def _demand(self) -> None:
        while not self._stop.wait(0.3):  # the WebRTC service repeats it each second
            self.send(StreamDemand("cam0", "h264", self.viewers))

    def send(self, msg: Message) -> None:
        with self._lock:  # the demand thread and the test share the socket
            self.pub.send_multipart(encode(msg))

    def watch(self, viewers: int) -> None:
        self.viewers = viewers
        self.send(StreamDemand("cam0", "h264", viewers))

    def recv(self, timeout: float) -> Message | None:
        if not self.sub.poll(int(timeout * 1000)):
            return None
        return decode(self.sub.recv_multipart())

    def wait_for(self, check: Callable[[Message], bool], timeout: float) -> Message:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is not None and check(msg):
                return msg
        raise AssertionError(f"no such message in {timeout} s:\n" + self.log())

    def collect(self, seconds: float) -> list[Message]:
        out, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is not None:
                out.append(msg)
        return out

    def log(self) -> str:
        return "\n".join([*self.capture.output, *self.encoder.output])

    def close(self) -> None:
        self._stop.set()
        self.encoder.stop()
        self.capture.stop()
        for sock in (self.pub, self.sub, self.frames):
            sock.close(linger=0)
        self.ctx.term()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path_factory.mktemp("encoder"))
    yield p
    p.close()


def encoded(msgs: list[Message]) -> list[EncodedReady]:
    return [m for m in msgs if isinstance(m, EncodedReady)]


def test_idle_encoder_encodes_nothing_and_has_not_loaded_a_codec(pipeline: Pipeline) -> None:
    pipeline.watch(0)
    msgs = pipeline.collect(1.5)
    assert encoded(msgs) == []
    status = [m for m in msgs if isinstance(m, EncoderStatus)][-1]
    assert (status.active, status.frames_out, status.backend) == (False, 0, "")
    maps = Path(f"/proc/{pipeline.encoder.proc.pid}/maps").read_text()
    assert "libavcodec" not in maps and "libx264" not in maps


def test_demand_starts_a_stream_that_decodes_from_the_ring(pipeline: Pipeline) -> None:
    pipeline.watch(1)
    first = pipeline.wait_for(lambda m: isinstance(m, EncodedReady), 5)
    assert isinstance(first, EncodedReady) and first.keyframe
    reader = RingReader.attach(first.ring)
    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_count = 1  # frame threads would hold pictures back
    units: list[EncodedReady] = []
    pictures: list[av.VideoFrame] = []
    unit: Message | None = first
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        if isinstance(unit, EncodedReady):  # read at once, as the WebRTC service would
            got = reader.read(unit.slot, unit.seq)
            assert got is not None, "the AU was overwritten before a prompt reader got to it"
            assert got[0].keyframe == unit.keyframe and got[0].fourcc == "H264"
            packet = av.Packet(got[1])
            packet.pts, packet.time_base = len(units), Fraction(1, 30)
            pictures += decoder.decode(packet)
            units.append(unit)
        unit = pipeline.recv(0.5)
    reader.close()
    assert len(pictures) == len(units) >= 35
    last, unit = pictures[-1], units[-1]
    assert (last.width, last.height) == (unit.width, unit.height) == (640, 480)
    assert read_timecode(last.to_ndarray(format="gray")) == pytest.approx(unit.ts_wall, abs=0.002)
    assert all(b.pts > a.pts for a, b in itertools.pairwise(units))
    assert not any(u.keyframe for u in units[1:]), "keyframe_interval is 10 s"


def test_a_keyframe_request_is_answered_within_half_a_second(pipeline: Pipeline) -> None:
    pipeline.watch(1)
    pipeline.wait_for(lambda m: isinstance(m, EncodedReady), 5)
    time.sleep(0.6)  # clear of the rate limit
    asked = time.monotonic()
    pipeline.send(KeyframeRequest("cam0", "pli"))
    pipeline.wait_for(lambda m: isinstance(m, EncodedReady) and m.keyframe, 2)
    assert time.monotonic() - asked < 0.6


def test_one_encode_per_captured_frame_however_many_viewers(pipeline: Pipeline) -> None:
    pipeline.watch(5)
    pipeline.wait_for(lambda m: isinstance(m, EncodedReady), 5)
    while pipeline.frames.poll(0):
        pipeline.frames.recv_multipart()
    msgs = pipeline.collect(2.0)
    captured = 0
    while pipeline.frames.poll(0):
        pipeline.frames.recv_multipart()
        captured += 1
    units = len(encoded(msgs))
    assert captured >= 50
    assert abs(units - captured) <= 3, (units, captured)
    status = [m for m in msgs if isinstance(m, EncoderStatus)][-1]
    assert status.active and status.backend == "libx264"
    assert "h264_v4l2m2m" in status.error  # why the hardware encoder is not in use


def test_zero_viewers_stops_the_stream(pipeline: Pipeline) -> None:
    pipeline.watch(1)
    pipeline.wait_for(lambda m: isinstance(m, EncodedReady), 5)
    pipeline.watch(0)
    time.sleep(0.3)
    assert encoded(pipeline.collect(1.0)) == []


def test_sigkill_then_restart_streams_again_and_sigterm_cleans_up(pipeline: Pipeline) -> None:
    pipeline.watch(1)
    before = pipeline.wait_for(lambda m: isinstance(m, EncodedReady), 5)
    assert isinstance(before, EncodedReady)
    pipeline.encoder.stop(signal.SIGKILL)
    assert (SHM_DIR / before.ring).exists(), "a killed encoder cannot unlink its ring"
    pipeline.encoder = Service("encoder", pipeline.config)  # what supervisord does
    after = pipeline.wait_for(lambda m: isinstance(m, EncodedReady), 10)
    assert isinstance(after, EncodedReady)
    assert after.keyframe and after.ring == before.ring and after.ring_id != before.ring_id
    assert pipeline.encoder.stop() == 0
    assert not (SHM_DIR / before.ring).exists()
    assert not Path(pipeline.endpoints.encoder_pub("cam0")[len("ipc://") :]).exists()


def test_supervisord_runs_one_encoder_per_camera_and_restarts_it(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(
        [
            {"id": "a", "device": "testpattern", "resolution": "320x240"},
            {"id": "b", "device": "testpattern", "resolution": "320x240"},
        ]
    )
    endpoints = Endpoints(stack.runtime_dir)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, Heartbeat.TOPIC)
    for cam in ("a", "b"):
        sub.connect(endpoints.encoder_pub(cam))
    try:
        pids = _encoder_pids(sub, {"encoder-a", "encoder-b"})
        os.kill(pids["encoder-a"], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while _encoder_pids(sub, {"encoder-a"})["encoder-a"] == pids["encoder-a"]:
            assert time.monotonic() < deadline, "supervisord did not restart the encoder"
    finally:
        sub.close(linger=0)
        ctx.term()
    assert stack.stop() == 0
    assert stack.leftovers() == []


def _encoder_pids(sub: zmq.Socket, names: set[str], timeout: float = 15) -> dict[str, int]:
    pids: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while set(pids) != names:
        assert sub.poll(int(max(0, deadline - time.monotonic()) * 1000)), f"no heartbeat {names}"
        msg = decode(sub.recv_multipart())
        if isinstance(msg, Heartbeat) and msg.service in names:
            pids[msg.service] = msg.pid
    return pids
