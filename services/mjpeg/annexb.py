"""Annex-B H.264 as browser-side players want it over a WebSocket (PROTOCOLS.md, "More
dialects / jmuxer"): the encoder's AUD and SEI units out, two AUDs after the access unit."""

from __future__ import annotations

from collections.abc import Iterator

from titanium.common.h264 import NAL_AUD, NAL_SEI, iter_nals

# jmuxer shows a frame only once the next one starts: two AUDs after each AU end it at
# once (two late frames become none). 0xF0: primary_pic_type 7 (any slice type).
TRAILER = b"\x00\x00\x00\x01\x09\xf0" * 2
DROPPED = (NAL_AUD, NAL_SEI)  # jmuxer drops them anyway; ours would split its AU count


def nal_units(au: bytes) -> Iterator[tuple[int, bytes]]:
    """(nal_type, unit) of each NAL unit, the unit from its header byte on, without the
    trailing zeros a unit may carry (the players get their own start codes)."""
    for nal_type, start, end in iter_nals(au):
        while end > start and au[end - 1] == 0:
            end -= 1
        if start < end:
            yield nal_type, au[start:end]


def for_players(au: bytes) -> bytes:
    """``au`` with 4-byte start codes, without AUD/SEI, followed by the two AUDs."""
    kept = [unit for nal_type, unit in nal_units(au) if nal_type not in DROPPED]
    return b"".join(b"\x00\x00\x00\x01" + unit for unit in kept) + TRAILER
