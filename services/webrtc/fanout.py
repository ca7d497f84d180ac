"""Fan-out: each access unit is split into RTP payloads once per camera, not once per viewer.

Every viewer's track of a camera hands its sender the same ``av.Packet`` for an AU (the feed
makes one per AU it reads and shares it here). aiortc's H.264 ``pack`` (NAL splitting,
STAP-A/FU-A) depends only on the packet's bytes and pts, so the first sender's result is
kept and given to every other sender: per viewer remain only what differs per viewer, in
aiortc's send loop (sequence numbers, SSRC, its random timestamp origin, header extensions,
SRTP, sendto). ``av.Packet`` cannot be subclassed nor weakly referenced, so shared packets
are looked up by identity; the entry holds the packet, so its id is not reused while shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import av
from aiortc.codecs.h264 import H264Encoder

_original_pack = H264Encoder.pack


@dataclass
class _Shared:
    packet: av.Packet
    on_pack: Callable[[], None]
    result: tuple[list[bytes], int] | None = None


_shared: dict[int, _Shared] = {}


def share(packet: av.Packet, on_pack: Callable[[], None]) -> None:
    """Pack ``packet`` once for every sender; ``on_pack`` is called when that happens."""
    _shared[id(packet)] = _Shared(packet, on_pack)


def forget(packet: av.Packet) -> None:
    """A superseded AU: a sender that still packs it (none should: tracks hand over the
    newest AU without yielding) packs it on its own, correctly."""
    entry = _shared.get(id(packet))
    if entry is not None and entry.packet is packet:
        del _shared[id(packet)]


def _shared_pack(self: H264Encoder, packet: av.Packet) -> tuple[list[bytes], int]:
    entry = _shared.get(id(packet))
    if entry is None or entry.packet is not packet:
        return _original_pack(self, packet)
    if entry.result is None:
        entry.result = _original_pack(self, packet)
        entry.on_pack()
    # Senders only read the list (enumerate, len) and its immutable bytes: sharing is safe.
    return entry.result


def install() -> None:
    H264Encoder.pack = _shared_pack  # type: ignore[method-assign]
