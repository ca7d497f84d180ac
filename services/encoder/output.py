"""The encoder's output: its own ring of access units, each announced by an EncodedReady."""

from __future__ import annotations

import logging

from titanium.common import formats
from titanium.common.messages import EncodedReady
from titanium.common.ring import FLAG_KEYFRAME, RingWriter

log = logging.getLogger("titanium.encoder")
# AUs are small next to raw frames; slots are many so a WebRTC reader a few frames behind
# still finds its AU, and sized generously (w*h bytes) so even a noisy IDR fits.
RING_SLOTS = 8


class AuRing:
    """Created at start (replacing a segment a killed encoder left), unlinked at close."""

    def __init__(self, camera_id: str, name: str, capacity: int) -> None:
        self.camera_id = camera_id
        self.ring = RingWriter.create(name, RING_SLOTS, capacity)

    def write(
        self, data: bytes, keyframe: bool, width: int, height: int, mono_ns: int, wall_ns: int
    ) -> EncodedReady:
        """Put one AU in the next slot; returns the message that announces it."""
        if len(data) > self.ring.capacity:
            # Readers follow the new ring_id in the next EncodedReady.
            log.info("an AU of %d bytes outgrows the ring's slots: new ring", len(data))
            name = self.ring.name
            self.ring.close()
            self.ring = RingWriter.create(name, RING_SLOTS, len(data) * 2)
        view = self.ring.begin()
        view[: len(data)] = data
        release(view)
        flags = FLAG_KEYFRAME if keyframe else 0
        slot, seq = self.ring.commit(
            len(data), formats.H264, width, height, mono_ns, wall_ns, flags
        )
        return EncodedReady(
            camera=self.camera_id,
            codec="h264",
            ring=self.ring.name,
            ring_id=self.ring.ring_id,
            slot=slot,
            seq=seq,
            keyframe=keyframe,
            width=width,
            height=height,
            pts=mono_ns * 9 // 100_000,  # 90 kHz, the RTP video clock, from capture time
            ts_wall=wall_ns / 1e9,
        )

    def close(self) -> None:
        self.ring.close()


def release(view: memoryview) -> None:
    try:
        view.release()
    except BufferError:  # a numpy view of it is still alive; it goes with the garbage
        pass
