"""The camera's real frame rate reaches the encoder: the real capture and encoder processes
on a file source whose clip is 15 fps under a 30 fps config, with this test in the WebRTC
service's place (StreamDemand) and, where it says so, in the governor's (QualityCommand).

Keyframe spacing and bitrate are measured from the encoder's own output: the capture times
of its keyframes and the sizes of the access units read from its h264 ring."""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from tests.integration.clips import make_clip
from tests.integration.conftest import Stack
from tests.integration.test_encoder_service import Service
from titanium.common.endpoints import Endpoints
from titanium.common.messages import (
    CameraStatus,
    EncodedReady,
    EncoderStatus,
    Message,
    QualityCommand,
    StreamDemand,
    decode,
    encode,
)
from titanium.common.ring import RingReader

CLIP_FPS = 15
BITRATE = 400_000
KEYFRAME_INTERVAL = 1.0


@dataclass
class Measured:
    keyframe_gaps: list[float]  # seconds between keyframes' capture times
    bitrate: float  # bit/s over whole keyframe intervals
    fps: float  # access units a second


class RatePipeline:
    """capture + encoder on a 15 fps clip configured as a 30 fps camera; a PUB standing in
    for the WebRTC service and one for the governor."""

    def __init__(self, tmp: Path) -> None:
        clip = _clip(tmp)
        self.endpoints = Endpoints(tmp / "run")
        self.endpoints.runtime_dir.mkdir()
        camera = {
            "device": f"file:{clip}",
            "resolution": "320x240",
            "fps": 30,
            "keyframe_interval": KEYFRAME_INTERVAL,
            "bitrate": BITRATE // 1000,
            "encoder": "libx264",
        }
        config = tmp / "titanium.json"
        doc = {"titanium": {"cameras": [camera], "runtime_dir": str(self.endpoints.runtime_dir)}}
        config.write_text(json.dumps(doc))
        self.ctx = zmq.Context()
        self.webrtc = self.ctx.socket(zmq.PUB)
        self.webrtc.bind(self.endpoints.webrtc_pub())
        self.governor = self.ctx.socket(zmq.PUB)
        self.governor.bind(self.endpoints.governor_pub())
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(self.endpoints.encoder_pub("cam0"))
        self.sub.connect(self.endpoints.capture_pub("cam0"))
        self._stop = threading.Event()
        self._command: QualityCommand | None = None
        self._lock = threading.Lock()
        self.capture = Service("capture", config)
        self.encoder = Service("encoder", config)
        threading.Thread(target=self._repeat, daemon=True).start()
        self._reader: RingReader | None = None

    def _repeat(self) -> None:
        while not self._stop.wait(0.3):  # both services repeat theirs about once a second
            with self._lock:
                self.webrtc.send_multipart(encode(StreamDemand("cam0", "h264", 1)))
                if self._command is not None:
                    self.governor.send_multipart(encode(self._command))

    def command(self, fps: int) -> None:
        cmd = QualityCommand("cam0", f"240p{fps}", 320, 240, fps, BITRATE, False, "test")
        with self._lock:
            self._command = cmd
            self.governor.send_multipart(encode(cmd))

    def collect(self, seconds: float) -> tuple[list[tuple[EncodedReady, int]], list[Message]]:
        """The AUs (with their sizes, read from the ring at once) and the other messages
        published for ``seconds``."""
        units: list[tuple[EncodedReady, int]] = []
        other: list[Message] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not self.sub.poll(int(left * 1000)):
                continue
            msg = decode(self.sub.recv_multipart())
            if not isinstance(msg, EncodedReady):
                other.append(msg)
                continue
            if self._reader is None or self._reader.ring_id != msg.ring_id:
                if self._reader is not None:
                    self._reader.close()
                self._reader = RingReader.attach(msg.ring)
            got = self._reader.read(msg.slot, msg.seq)
            assert got is not None, "an AU was overwritten before a prompt reader got to it"
            units.append((msg, len(got[1])))
        return units, other

    def measure(self, settle: float, seconds: float) -> tuple[Measured, list[Message]]:
        self.collect(settle)
        units, other = self.collect(seconds)
        keys = [i for i, (u, _) in enumerate(units) if u.keyframe]
        assert len(keys) >= 3, f"{len(keys)} keyframes in {seconds} s:\n{self.log()}"
        first, last = keys[0], keys[-1]
        span = units[last][0].ts_wall - units[first][0].ts_wall
        bits = 8 * sum(size for _, size in units[first:last])
        times = [units[i][0].ts_wall for i in keys]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return Measured(gaps, bits / span, (last - first) / span), other

    def log(self) -> str:
        return "\n".join([*self.capture.output, *self.encoder.output])

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.close()
        self.encoder.stop()
        self.capture.stop()
        for sock in (self.webrtc, self.governor, self.sub):
            sock.close(linger=0)
        self.ctx.term()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[RatePipeline]:
    p = RatePipeline(tmp_path)
    yield p
    p.close()


def _clip(tmp: Path) -> Path:
    # Temporal noise: every frame costs bits, so the encoder can always spend its budget
    # and a bitrate shortfall is the rate control's, not the content's.
    return make_clip(tmp / "clip15.y4m", CLIP_FPS, 2, "noise=alls=40:allf=t")


def _check(m: Measured, fps: float, log: str) -> None:
    assert m.fps == pytest.approx(fps, rel=0.1), f"{m}\n{log}"
    gap = statistics.median(m.keyframe_gaps)
    assert gap == pytest.approx(KEYFRAME_INTERVAL, rel=0.15), f"{m}\n{log}"
    assert m.bitrate == pytest.approx(BITRATE, rel=0.15), f"{m}\n{log}"


def test_a_slower_camera_keeps_keyframe_interval_and_bitrate(pipeline: RatePipeline) -> None:
    """Pins: the encoder took its time base, GOP and bit budget from the configured 30 fps
    while the source delivered 15, so keyframes came every 2 s instead of 1 s and the
    stream ran at about half its bitrate. Now the frames carry the negotiated 15 fps, and
    capture's and the encoder's status say so."""
    m, other = pipeline.measure(settle=1.5, seconds=4.5)
    _check(m, CLIP_FPS, pipeline.log())
    cams = [s for s in other if isinstance(s, CameraStatus)]
    encs = [s for s in other if isinstance(s, EncoderStatus)]
    assert cams and cams[-1].fps == CLIP_FPS and cams[-1].fps_configured == 30
    assert encs and encs[-1].fps == CLIP_FPS


def test_a_rate_change_while_streaming_reaches_the_encoder(pipeline: RatePipeline) -> None:
    """Pins: the encoder set its rate from the governor's QualityCommand, not from what the
    camera delivers: a rung asking 30 fps of a camera that gives 15 doubled the keyframe
    interval again. A rung of 10 fps (capture reopens slower) and then of 30 (the camera
    still gives only 15) must both keep the interval and the bitrate."""
    pipeline.command(10)
    _check(pipeline.measure(settle=2.0, seconds=4.5)[0], 10, pipeline.log())
    pipeline.command(30)
    _check(pipeline.measure(settle=2.0, seconds=4.5)[0], CLIP_FPS, pipeline.log())


def test_status_shows_the_rate_the_camera_delivers(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    """Pins: /status had only the configured rate and a measured one; the rate the frames
    carry (and the encoder follows) was nowhere."""
    clip = _clip(tmp_path)
    stack = make_stack([{"device": f"file:{clip}", "resolution": "320x240", "fps": 30}])
    stack.wait_for(lambda s: s["cameras"]["cam0"].get("fps") == CLIP_FPS, 10)
    cam = stack.status()["cameras"]["cam0"]
    assert cam["fps_configured"] == 30
