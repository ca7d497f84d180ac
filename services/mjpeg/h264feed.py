"""One camera's H.264 as the front door's WebSocket clients and its LL-HLS muxer get it:
the encoder's EncodedReady followed only while a client is connected (no wake-up per access
unit otherwise), each AU read once from the encoder's ring and handed to every client, and
the front door's own StreamDemand and KeyframeRequest on its PUB, so the encoder encodes for
these clients as it does for the WebRTC service's viewers (it adds the two demands up)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import zmq.asyncio
from aiohttp import web

from titanium.common.bus import Subscriber
from titanium.common.endpoints import Endpoints
from titanium.common.messages import EncodedReady, KeyframeRequest, Message, StreamDemand
from titanium.common.ring import RingError, RingFollower
from titanium.services.mjpeg.annexb import for_players

log = logging.getLogger("titanium.mjpeg.h264")
# The encoder drops a source whose demand it has not heard for 3 s: repeat well within it.
DEMAND_PERIOD = 1.0
SOURCE = "mjpeg"  # StreamDemand.source of the front door's viewers


@dataclass(frozen=True)
class H264Unit:
    """One access unit, in the bytes the WebSocket dialects send (annexb.for_players)."""

    data: bytes
    keyframe: bool
    seq: int  # the encoder's ring sequence
    ts_wall: float  # capture time of its source frame
    pts: int  # 90 kHz, from the capture time (the LL-HLS muxer's sample times)


class H264Client(Protocol):
    def offer(self, unit: H264Unit) -> None:
        """A new AU; must not block (the client queues or drops it itself)."""

    def restart(self) -> None:
        """The stream broke (an AU was lost): start again at the next keyframe."""

    def wants_keyframe(self) -> bool:
        """Waiting for a keyframe and able to take one now (a client whose socket is
        behind asks for none: it would make every viewer pay for IDRs it cannot read)."""

    def held(self) -> tuple[int, int]:
        """(bytes held for it here: pending AUs and its socket's unsent buffer, times it
        skipped to a keyframe)."""


class H264Feed:
    def __init__(
        self,
        camera_id: str,
        endpoint: str,
        ctx: zmq.asyncio.Context,
        publish: Callable[[Message], object],
    ) -> None:
        self.camera_id = camera_id
        self.clients: list[H264Client] = []
        self.taken = 0  # AUs read from the ring
        self.missed = 0  # AUs lapped in the ring before they could be read
        self._endpoint = endpoint
        self._ctx = ctx
        self._publish = publish
        self._task: asyncio.Task[None] | None = None
        self._last: tuple[int, int] | None = None  # (ring_id, seq) of the last AU read
        self._ring = RingFollower()

    def join(self, client: H264Client) -> None:
        """Start ``client`` at the next keyframe, asking the encoder for one now."""
        self.clients.append(client)
        self._demand()
        self._publish(KeyframeRequest(self.camera_id, "join"))
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def leave(self, client: H264Client) -> None:
        with contextlib.suppress(ValueError):
            self.clients.remove(client)
        self._demand()
        if not self.clients and self._task is not None:
            self._task.cancel()
            self._task = None

    def _demand(self) -> None:
        self._publish(StreamDemand(self.camera_id, "h264", len(self.clients), SOURCE))

    async def _run(self) -> None:
        sub = Subscriber(self._ctx, [self._endpoint], (EncodedReady,), hwm=64)
        repeat = asyncio.ensure_future(self._repeat())
        self._last = None
        try:
            async for msg in sub:
                if isinstance(msg, EncodedReady) and msg.camera == self.camera_id:
                    self.take(msg)
        finally:
            repeat.cancel()
            sub.close()
            self._ring.close()

    async def _repeat(self) -> None:
        """The demand each second, and a keyframe request while a client waits for one
        (the first may have gone out before our subscription reached the encoder)."""
        while True:
            await asyncio.sleep(DEMAND_PERIOD)
            self._demand()
            if any(c.wants_keyframe() for c in self.clients):
                self._publish(KeyframeRequest(self.camera_id, "join"))

    def take(self, ready: EncodedReady) -> None:
        """Read the AU ``ready`` announces and hand it to every client."""
        try:
            got = self._ring.follow(ready.ring, ready.ring_id).read(ready.slot, ready.seq)
        except RingError as e:
            log.warning("%s: %s", self.camera_id, e)
            got = None
        contiguous = self._last == (ready.ring_id, ready.seq - 1)
        if got is None:
            # Lapped while we read (or gone): never sent torn, and the AUs after it
            # reference it, so every client starts again at a keyframe.
            self.missed += 1
            self._last = None
            for client in self.clients:
                client.restart()
            return
        self._last = (ready.ring_id, ready.seq)
        if not contiguous and not ready.keyframe:
            for client in self.clients:
                client.restart()
        self.taken += 1
        unit = H264Unit(for_players(got[1]), ready.keyframe, ready.seq, ready.ts_wall, ready.pts)
        for client in list(self.clients):
            client.offer(unit)

    def describe(self, kind: type | None = None) -> dict[str, int]:
        """For /status: what the clients (those of ``kind`` if given) cost now (their
        queues are bounded: a stalled client's ``held_bytes`` stays flat while its
        ``skips`` grow); ``taken`` and ``missed`` are the feed's, for all of them."""
        clients = [c for c in self.clients if kind is None or isinstance(c, kind)]
        held = [c.held() for c in clients]
        return {
            "clients": len(clients),
            "taken": self.taken,
            "missed": self.missed,
            "held_bytes": sum(b for b, _ in held),
            "skips": sum(n for _, n in held),
        }

    async def close(self) -> None:
        """Before the ZeroMQ context ends: the subscription closes in the task's own end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


H264_FEEDS = web.AppKey("h264_feeds", dict[str, H264Feed])


def install(
    app: web.Application,
    endpoints: Endpoints,
    camera_ids: list[str],
    ctx: zmq.asyncio.Context,
    publish: Callable[[Message], object],
) -> None:
    """One H.264 feed per camera in ``app[H264_FEEDS]``, closed with the app."""
    feeds = {cam: H264Feed(cam, endpoints.encoder_pub(cam), ctx, publish) for cam in camera_ids}
    app[H264_FEEDS] = feeds

    async def close(app: web.Application) -> None:
        for feed in feeds.values():
            await feed.close()

    app.on_cleanup.append(close)
