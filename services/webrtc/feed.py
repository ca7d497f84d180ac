"""One camera's encoded stream as the WebRTC service sees it: EncodedReady from the encoder,
access units read once from its ring, and the newest one held for every viewer's track."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from fractions import Fraction

import av
import zmq
import zmq.asyncio

from titanium.common.bus import Subscriber
from titanium.common.messages import EncodedReady, EncoderStatus
from titanium.common.ring import RingError, RingFollower
from titanium.services.webrtc.frametimes import FrameTimes
from titanium.services.webrtc.rtpsend import AuRtp

log = logging.getLogger("titanium.webrtc.feed")
VIDEO_TIME_BASE = Fraction(1, 90000)


@dataclass(frozen=True)
class AccessUnit:
    n: int  # the feed's own counter: consecutive AUs have consecutive n
    data: bytes
    keyframe: bool
    pts: int  # 90 kHz
    ts_wall: float  # capture time of the source frame
    width: int
    height: int
    # The one packet every viewer's track hands over for this AU.
    packet: av.Packet = field(compare=False)
    # Its RTP packets, serialized once per camera for every viewer's send loop (rtpsend.py).
    rtp: AuRtp = field(compare=False)


class EncodedFeed:
    """Follows one camera's encoder; ``viewers`` says whether to read its ring at all."""

    def __init__(
        self,
        camera_id: str,
        endpoint: str,
        ctx: zmq.asyncio.Context,
    ) -> None:
        self.camera_id = camera_id
        self.viewers = 0
        self.latest: AccessUnit | None = None
        self.status: EncoderStatus | None = None
        self.missed = 0  # AUs overwritten in the ring before they could be read
        self.taken = 0  # AUs read from the ring (while anyone watched)
        self.packetized = 0  # AUs split into RTP payloads: once each, whatever the viewers
        self.times = FrameTimes()
        self._sub = Subscriber(ctx, [endpoint], (EncodedReady, EncoderStatus), hwm=256)
        self._ring = RingFollower()
        self._last: tuple[int, int] | None = None  # (ring_id, seq) of the last AU read
        self._n = 0
        self._new = asyncio.Event()

    async def run(self) -> None:
        async for msg in self._sub:
            if isinstance(msg, EncodedReady):
                if self.viewers:
                    self._take(msg)
            elif isinstance(msg, EncoderStatus):
                self.status = msg

    def _take(self, ready: EncodedReady) -> None:
        """Copy the AU out of the ring (a few kB: cheaper than holding the slot)."""
        try:
            reader = self._ring.follow(ready.ring, ready.ring_id)
        except RingError as e:
            log.warning("%s: %s", self.camera_id, e)
            return
        got = reader.read(ready.slot, ready.seq)
        if got is None:
            self.missed += 1
            return
        _, data = got
        # A gap in the encoder's sequence (a restart, an overwrite) breaks the decoder's
        # reference chain just like a skipped AU does: count it as a discontinuity.
        contiguous = self._last is not None and self._last == (ready.ring_id, ready.seq - 1)
        self._last = (ready.ring_id, ready.seq)
        self._n += 1 if contiguous else 2
        self.taken += 1
        self.times.arrived(ready.pts, ready.ts_wall)
        packet = av.Packet(data)
        packet.pts = ready.pts
        packet.time_base = VIDEO_TIME_BASE
        self.latest = AccessUnit(
            self._n,
            data,
            ready.keyframe,
            ready.pts,
            ready.ts_wall,
            ready.width,
            ready.height,
            packet,
            AuRtp(packet, self._packed),
        )
        event, self._new = self._new, asyncio.Event()
        event.set()

    def _packed(self) -> None:
        self.packetized += 1

    async def next_after(self, n: int) -> AccessUnit:
        """The newest AU newer than ``n``, waiting for it."""
        while self.latest is None or self.latest.n <= n:
            await self._new.wait()
        return self.latest

    def close(self) -> None:
        self._sub.close()
        self._ring.close()
