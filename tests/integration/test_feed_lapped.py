"""Regression: on a board where a JPEG encode outlasts the ring, the front door used to
throw away every encode (capture had lapped the slot) and served nothing, /snapshot
answering 503 (seen in the vivid VM under emulation). It now copies the newest frame out
and encodes the copy."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import zmq.asyncio

from titanium.common.messages import FrameReady
from titanium.common.ring import SHM_DIR, RingWriter
from titanium.services.mjpeg import feed as feed_module
from titanium.services.mjpeg.feed import CameraFeed

W, H = 64, 48
SIZE = W * H * 3 // 2


def _write(ring: RingWriter, level: int) -> FrameReady:
    view = ring.begin()
    view[:SIZE] = bytes([level]) * SIZE
    view.release()
    slot, seq = ring.commit(SIZE, "YU12", W, H, time.monotonic_ns(), time.time_ns())
    return FrameReady("cam0", ring.name, ring.ring_id, slot, seq, "YU12", W, H, time.time())


def test_slow_encodes_fall_back_to_copying_the_newest_frame(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    name = f"titanium-test-{uuid.uuid4().hex[:8]}"
    ring = RingWriter.create(name, 2, SIZE)
    encoded_levels: list[int] = []
    real_encode = feed_module.encode_raw

    def slow_encode(buf: memoryview, *args: Any) -> bytes:
        encoded_levels.append(buf[0])
        if len(encoded_levels) == 1:  # capture laps the slot while this encode runs
            feed.ready = _write(ring, 2)
            feed.ready = _write(ring, 3)
        return real_encode(buf, *args)

    monkeypatch.setattr(feed_module, "encode_raw", slow_encode)
    ctx = zmq.asyncio.Context()
    feed = CameraFeed("cam0", f"ipc://{tmp_path}/none.pub", ctx, 80, {})
    try:
        first = _write(ring, 1)
        feed.ready = first
        frame = feed._produce(first)
        assert frame is not None, "the lapped encode was thrown away and nothing replaced it"
        assert frame.seq == feed.ready.seq  # the newest frame, encoded from a copy
        assert encoded_levels == [1, 3]
        assert feed.missed == 1
        # While copying, a frame is served even if capture overwrites its slot meanwhile.
        later = _write(ring, 4)
        assert feed._produce(later) is not None
    finally:
        feed.close()
        ctx.term()
        ring.close()
        assert not (SHM_DIR / name).exists()
