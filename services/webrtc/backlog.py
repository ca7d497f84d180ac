"""How far one viewer's packets are behind its link: the bytes its sender has handed to the
ICE transport that have not yet left the machine.

aiortc's sender never waits: each RTP packet goes down RTCDtlsTransport → RTCIceTransport →
the aioice Connection's nominated pair → that pair's asyncio datagram transport. When the
uplink is the bottleneck (a full Wi-Fi or a shaped device), the packets wait in the socket's
kernel queue and then the qdisc drops them quietly; asyncio would queue in userspace only
if the kernel refused the send (EAGAIN), which the narrow-link measurements never saw (its
buffer stayed at 0 bytes). Both queues are counted: their size is all we can see of them.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import termios
from collections.abc import Callable
from typing import Any

from aioice.turn import TurnTransport


def _buffered(transport: Any) -> int:
    """Userspace queue plus the kernel's: SIOCOUTQ (TIOCOUTQ's number) on a UDP socket is
    the bytes sent but not yet gone out of the device (waiting in the qdisc, e.g. a full
    Wi-Fi or shaped uplink), which is where a narrow local link holds its queue before it
    drops."""
    if transport is None:
        return 0
    size = getattr(transport, "get_write_buffer_size", None)
    queued = int(size()) if callable(size) else 0
    sock = transport.get_extra_info("socket")
    if sock is not None:
        out = array.array("i", [0])
        try:
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, out, True)
            queued += out[0]
        except OSError:
            pass
    return queued


def transport_backlog(sender: Any) -> int:
    """Bytes queued (asyncio's buffer and the socket's kernel queue) on the path
    ``sender``'s packets take now (0 before ICE has nominated a pair). A relayed path
    (TURN) counts the queue of the socket to the TURN server, UDP or TCP, and the sends
    aioice has in flight to it, one packet each."""
    dtls = getattr(sender, "transport", None)
    ice = getattr(dtls, "transport", None)
    connection = getattr(ice, "_connection", None)
    nominated = getattr(connection, "_nominated", None) or {}
    pair = nominated.get(1)
    if pair is None:
        return 0
    transport = getattr(pair.protocol, "transport", None)
    if isinstance(transport, TurnTransport):
        inner = getattr(transport, "_TurnTransport__inner_protocol", None)
        tasks = getattr(transport, "_TurnTransport__send_tasks", ())
        # A task is one packet not yet written: count it as a full-sized one.
        return _buffered(getattr(inner, "transport", None)) + 1200 * len(tasks)
    if isinstance(transport, asyncio.BaseTransport):
        return _buffered(transport)
    return 0


# A viewer whose path holds more than this much of the camera's bitrate unsent is behind
# its link: more would only wait in a queue, or overflow it and be lost (then resent, or
# stall an aiortc receiver's jitter buffer, which waits 512 packets for a lost one).
BACKLOG_SECONDS = 0.1
BACKLOG_MIN_BYTES = 16_000  # a few packets whatever the bitrate (the kernel's truesize)
DRAIN_POLL = 0.005
DRAIN_GIVE_UP = 1.0  # a queue that never drains (a stuck socket) must not stop the viewer


class Pacer:
    """Makes one viewer's sender wait: each RTP packet (media and retransmission) goes out
    only once that viewer's backlog is under ``limit()`` bytes. The wait backs up into
    aiortc's send loop, so the viewer's track is asked for frames late and skips to the
    newest one and a keyframe (track.py), instead of its link's queue growing or dropping.
    Only this viewer's peer connection waits: the others' senders do not share it."""

    def __init__(self, sender: Any, limit: Callable[[], int]) -> None:
        self.waits = 0  # packets that had to wait
        self.waited = 0.0  # seconds spent waiting, in all
        self._sender = sender
        self._limit = limit
        self.attach()

    def attach(self) -> None:
        """Wrap the DTLS transport the sender uses now. BUNDLE can move the sender onto
        another transport of its peer connection when the answer arrives, so the session
        calls this again once connected; a transport is wrapped once."""
        dtls = self._sender.transport
        if dtls is None or getattr(dtls, "_titanium_paced", False):
            return
        original = dtls._send_rtp

        async def paced(data: bytes) -> None:
            if transport_backlog(self._sender) > self._limit():
                await self._drain()
            await original(data)

        dtls._send_rtp = paced
        dtls._titanium_paced = True

    async def wait(self) -> None:
        """rtpsend.py's loop: wait here before a frame and every few of its packets (the
        media packets do not go through the wrapped ``_send_rtp``)."""
        if transport_backlog(self._sender) > self._limit():
            await self._drain()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.waits += 1
        while transport_backlog(self._sender) > self._limit():
            if loop.time() - start > DRAIN_GIVE_UP:
                break
            await asyncio.sleep(DRAIN_POLL)
        self.waited += loop.time() - start


def backlog_limit(bitrate: int) -> int:
    return max(BACKLOG_MIN_BYTES, int(bitrate * BACKLOG_SECONDS / 8))
