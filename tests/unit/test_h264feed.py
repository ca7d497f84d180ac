"""The front door's H.264 feed (services/mjpeg/h264feed.py) reading AUs from a real ring
in shared memory, as the encoder writes it: what its WebSocket clients are handed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import zmq.asyncio

from titanium.common import formats
from titanium.common.messages import EncodedReady, KeyframeRequest, Message, StreamDemand
from titanium.common.ring import RingWriter
from titanium.services.mjpeg.annexb import TRAILER
from titanium.services.mjpeg.h264feed import H264Feed, H264Unit

AUD, SEI = b"\x00\x00\x00\x01\x09\xf0", b"\x00\x00\x00\x01\x06\x05\x01\x80"
SPS, PPS = b"\x00\x00\x00\x01\x67\x42\xc0\x1e", b"\x00\x00\x00\x01\x68\xce\x3c\x80"


def au(n: int, key: bool) -> bytes:
    """An AU as x264 writes one: AUD, (SEI, SPS, PPS,) a slice carrying ``n`` (a 3-byte
    start code, and a trailing zero byte the spec allows after a NAL unit)."""
    head = AUD + (SEI + SPS + PPS if key else b"")
    return head + (b"\x00\x00\x01\x65" if key else b"\x00\x00\x01\x41") + body(n) + b"\x00"


def body(n: int) -> bytes:
    return bytes([n + 1]) * 64


class Client:
    def __init__(self) -> None:
        self.units: list[H264Unit] = []
        self.restarts = 0

    def offer(self, unit: H264Unit) -> None:
        self.units.append(unit)

    def restart(self) -> None:
        self.restarts += 1

    def wants_keyframe(self) -> bool:
        return False

    def held(self) -> tuple[int, int]:
        return 0, 0


@pytest.fixture
def ring() -> Iterator[RingWriter]:
    w = RingWriter.create(f"titanium-test-{uuid.uuid4().hex[:8]}-h264", 2, 4096)
    yield w
    w.close()


def write(ring: RingWriter, data: bytes, key: bool) -> EncodedReady:
    view = ring.begin()
    view[: len(data)] = data
    view.release()
    slot, seq = ring.commit(len(data), formats.H264, 64, 48, 0, 0, 1 if key else 0)
    return EncodedReady("cam0", "h264", ring.name, ring.ring_id, slot, seq, key, 64, 48, 0, 0.0)


def feed_with(client: Client) -> tuple[H264Feed, list[Message]]:
    sent: list[Message] = []
    feed = H264Feed("cam0", "ipc:///nonexistent", zmq.asyncio.Context.instance(), sent.append)
    feed.clients.append(client)  # joined, without the subscription task
    return feed, sent


def test_each_au_is_handed_over_once_without_aud_and_sei_and_with_two_auds(
    ring: RingWriter,
) -> None:
    client = Client()
    feed, _ = feed_with(client)
    for n in range(4):
        feed.take(write(ring, au(n, n == 0), n == 0))
    assert [u.keyframe for u in client.units] == [True, False, False, False]
    first = client.units[0].data
    assert first == SPS + PPS + b"\x00\x00\x00\x01\x65" + body(0) + TRAILER
    assert client.units[1].data == b"\x00\x00\x00\x01\x41" + body(1) + TRAILER
    assert client.restarts == 0 and feed.missed == 0


def test_a_lapped_slot_is_skipped_and_every_client_restarts_at_a_keyframe(
    ring: RingWriter,
) -> None:
    """Pins reading by EncodedReady's seq: an announcement whose slot the encoder has
    already overwritten must not hand over the newer AU in its place (a frame out of
    order, or torn), and since what follows references the lost AU, clients restart."""
    client = Client()
    feed, _ = feed_with(client)
    feed.take(write(ring, au(0, True), True))
    late = write(ring, au(1, False), False)
    write(ring, au(2, False), False)
    write(ring, au(3, False), False)  # two slots: AU 1's slot now holds AU 3
    feed.take(late)
    assert len(client.units) == 1 and client.restarts == 1 and feed.missed == 1
    feed.take(write(ring, au(4, True), True))
    assert client.units[-1].keyframe and client.restarts == 1


def test_joining_asks_for_a_keyframe_and_counts_the_front_doors_viewers() -> None:
    async def run() -> list[Message]:
        sent: list[Message] = []
        ctx = zmq.asyncio.Context()
        feed = H264Feed("cam0", "ipc:///nonexistent-titanium-test", ctx, sent.append)
        a, b = Client(), Client()
        feed.join(a)
        feed.join(b)
        feed.leave(a)
        feed.leave(b)
        await feed.close()
        ctx.term()
        return sent

    sent = asyncio.run(run())
    demands = [m.viewers for m in sent if isinstance(m, StreamDemand) and m.source == "mjpeg"]
    assert demands == [1, 2, 1, 0]
    assert sum(isinstance(m, KeyframeRequest) for m in sent) == 2
