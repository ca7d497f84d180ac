"""A test viewer that asks again for a lost packet, as a browser does.

aiortc's receiver sends a NACK only when a new gap appears, listing every packet still
missing; its jitter buffer then waits up to 512 packets for a missing one. So when the NACK
or the retransmission is lost too (1 % each way on the narrow link) and no new gap follows
within the sender's 128-packet history, the packet is gone for good and the viewer's frames
stall for seconds, whatever the sender did. A browser does not: libwebrtc's NACK module
repeats the request every round trip until the packet comes or is too old. :func:`keep_nacking`
gives the aiortc viewer that habit, so what a narrow-link test measures is Titanium's sender,
not the test viewer's own way of losing a packet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiortc import RTCPeerConnection

PERIOD = 0.05  # about one round trip on a narrow link; libwebrtc waits one RTT


def _media_ssrc(receiver: Any) -> int | None:
    """The SSRC of the media (not its retransmissions) the receiver has heard from."""
    streams = getattr(receiver, "_RTCRtpReceiver__remote_streams", {})
    rtx = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", {})
    media = [ssrc for ssrc in streams if ssrc not in rtx]
    return media[0] if media else None


async def _nack_forever(pc: RTCPeerConnection) -> None:
    while True:
        await asyncio.sleep(PERIOD)
        for receiver in pc.getReceivers():
            nacks = getattr(receiver, "_RTCRtpReceiver__nack_generator", None)
            ssrc = _media_ssrc(receiver)
            if nacks is not None and nacks.missing and ssrc is not None:
                await receiver._send_rtcp_nack(ssrc, sorted(nacks.missing))


@contextlib.asynccontextmanager
async def keep_nacking(pc: RTCPeerConnection) -> AsyncIterator[None]:
    """While inside, every :data:`PERIOD` the viewer's receivers ask again for each packet
    still missing (aiortc forgets one 128 packets behind the newest)."""
    task = asyncio.ensure_future(_nack_forever(pc))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
