"""The encoder serves two sources of demand at once: the WebRTC service's viewers and the
front door's H.264 WebSocket clients, each repeating its own StreamDemand on its own PUB.
Real capture and encoder processes (test_encoder_service.py's Pipeline in the WebRTC
service's place), and a second PUB at ``mjpeg_pub()`` in the front door's."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import zmq

from tests.integration.test_encoder_service import Pipeline
from titanium.common.messages import EncodedReady, EncoderStatus, StreamDemand, encode


class FrontDoor:
    """A PUB where the front door's is, repeating its demand as the front door does."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pub = pipeline.ctx.socket(zmq.PUB)
        self.pub.bind(pipeline.endpoints.mjpeg_pub())
        self.viewers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._repeat, daemon=True)
        self._thread.start()

    def _repeat(self) -> None:
        while not self._stop.wait(0.3):
            self.pub.send_multipart(encode(StreamDemand("cam0", "h264", self.viewers, "mjpeg")))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.pub.close(linger=0)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pipeline, FrontDoor]]:
    p = Pipeline(tmp_path_factory.mktemp("encoder-sources"))
    front = FrontDoor(p)
    yield p, front
    front.close()
    p.close()


def active_after(pipeline: Pipeline, seconds: float) -> tuple[bool, int]:
    """Whether the encoder said it is active in the last status of ``seconds``, and how many
    AUs it wrote meanwhile (what it wrote before, still queued here, is passed over)."""
    while pipeline.recv(0) is not None:
        pass
    msgs = pipeline.collect(seconds)
    status = [m for m in msgs if isinstance(m, EncoderStatus)]
    assert status, "no EncoderStatus:\n" + pipeline.log()
    return status[-1].active, sum(1 for m in msgs if isinstance(m, EncodedReady))


def test_one_source_going_to_zero_leaves_the_other_watching(
    sources: tuple[Pipeline, FrontDoor],
) -> None:
    """Pins the single viewer count per camera: the latest StreamDemand from anyone was the
    count, so the WebRTC service's 0 (repeated each second) stopped the encoder while the
    front door's client still watched, and the other way round."""
    pipeline, front = sources
    front.viewers = 1
    pipeline.watch(0)
    time.sleep(0.5)
    assert active_after(pipeline, 2.5) == (True, pytest.approx(75, abs=45))
    front.viewers, pipeline.viewers = 0, 2
    pipeline.watch(2)
    time.sleep(0.5)
    active, written = active_after(pipeline, 2.5)
    assert active and written > 30, "the WebRTC viewers were left without frames"
    front.viewers = 0
    pipeline.watch(0)
    time.sleep(1.0)  # the last AUs in flight when both went to 0
    active, written = active_after(pipeline, 2.0)
    assert not active and written == 0, "nobody watches: the encoder must idle"


def test_a_silent_source_times_out_on_its_own(sources: tuple[Pipeline, FrontDoor]) -> None:
    """A source that stops repeating its demand (a killed front door) takes only its own
    viewers away: the WebRTC service's repeated demand keeps the encoder going."""
    pipeline, front = sources
    pipeline.watch(1)
    front.viewers = 1
    time.sleep(0.5)
    front.close()  # gone, its last demand said 1
    time.sleep(3.5)  # past DEMAND_TIMEOUT
    assert active_after(pipeline, 1.5)[0], "the WebRTC viewer still watches"
    pipeline.watch(0)
    time.sleep(1.0)
    assert active_after(pipeline, 1.5) == (False, 0), "the front door's demand outlived it"
