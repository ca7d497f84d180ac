"""An idle encoder does not wake per frame (issue 12): with nobody watching H.264 it is not
subscribed to capture's FrameReady at all, and a viewer arriving still gets an IDR at once.
The real capture and encoder processes, as in test_encoder_service.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_encoder_service import Pipeline, encoded
from titanium.common.messages import EncodedReady, EncoderStatus, Heartbeat, Message


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path_factory.mktemp("encoder-idle"))
    yield p
    p.close()


def switches(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid``: one per wake-up from a wait."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def captured_during(pipeline: Pipeline, seconds: float) -> tuple[list[Message], int]:
    """What the encoder published over ``seconds``, and how many frames capture sent."""
    while pipeline.frames.poll(0):
        pipeline.frames.recv_multipart()
    msgs = pipeline.collect(seconds)
    n = 0
    while pipeline.frames.poll(0):
        pipeline.frames.recv_multipart()
        n += 1
    return msgs, n


def statuses(msgs: list[Message]) -> list[EncoderStatus]:
    return [m for m in msgs if isinstance(m, EncoderStatus)]


def test_idle_encoder_receives_no_frames_and_barely_wakes(pipeline: Pipeline) -> None:
    """Pins the encoder that stayed subscribed to FrameReady while idle and drained every
    frame (0.22 ms per captured frame for nothing): it must hear none while nobody watches,
    and wake far less often than frames come."""
    pipeline.watch(0)
    time.sleep(0.5)  # past any frame queued before the demand went to zero
    pid = pipeline.encoder.proc.pid
    before = switches(pid)
    msgs, captured = captured_during(pipeline, 3.0)
    woke = switches(pid) - before
    assert captured >= 60, "capture is not running: nothing to be idle against"
    heard = [s.frames_heard for s in statuses(msgs)]
    assert len(heard) >= 2 and not any(s.active for s in statuses(msgs))
    assert heard[-1] == heard[0], f"an idle encoder received {heard[-1] - heard[0]} frames"
    # Idle, its main and ZeroMQ I/O threads wake for the 250 ms poll, the demand (every
    # 0.3 s here) and the status and heartbeat it sends: 53 in 3 s against 90 frames when
    # measured. Subscribed, both threads woke for every frame: at least two per frame.
    assert woke < captured, (woke, captured)


def test_a_viewer_after_idle_gets_an_idr_at_once_and_nothing_counts_as_lost(
    pipeline: Pipeline,
) -> None:
    """Pins resubscribing on demand: the first unit is an IDR within a second of the
    StreamDemand, frames follow at capture's rate, and the frames published while we were
    unsubscribed are not counted as missed by the bus."""
    pipeline.watch(1)  # watched once, so the bus has seen capture's numbering
    pipeline.wait_for(lambda m: isinstance(m, EncodedReady), 5)
    pipeline.watch(0)
    time.sleep(1.0)  # idle: capture numbers on, unheard
    while pipeline.recv(0) is not None:
        pass  # the units of the first stream still queued here are not the new stream's
    asked = time.monotonic()
    pipeline.watch(1)
    first = pipeline.wait_for(lambda m: isinstance(m, EncodedReady), 5)
    took = time.monotonic() - asked
    assert isinstance(first, EncodedReady) and first.keyframe
    assert took < 1.0, f"first IDR {took:.2f} s after the demand"
    msgs, captured = captured_during(pipeline, 2.0)
    assert captured >= 40 and abs(len(encoded(msgs)) - captured) <= 3
    beats = [m for m in msgs if isinstance(m, Heartbeat)]
    assert beats and beats[-1].missed == 0, beats[-1:]
    pipeline.watch(0)
