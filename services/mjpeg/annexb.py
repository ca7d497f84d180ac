"""Annex-B H.264 as browser-side players want it over a WebSocket (PROTOCOLS.md, "More
dialects / jmuxer"): the encoder's AUD and SEI units out, two AUDs after the access unit."""

from __future__ import annotations

from collections.abc import Iterator

NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 1, 5, 6, 7, 8, 9
START = b"\x00\x00\x01"
# jmuxer shows a frame only once the next one starts: two AUDs after each AU end it at
# once (two late frames become none). 0xF0: primary_pic_type 7 (any slice type).
TRAILER = b"\x00\x00\x00\x01\x09\xf0" * 2
DROPPED = (NAL_AUD, NAL_SEI)  # jmuxer drops them anyway; ours would split its AU count


def nal_units(au: bytes) -> Iterator[tuple[int, bytes]]:
    """(nal_type, unit) of each NAL unit, the unit from its header byte on."""
    pos = au.find(START)
    while pos >= 0:
        start = pos + 3
        nxt = au.find(START, start)
        end = len(au) if nxt < 0 else nxt
        while end > start and au[end - 1] == 0:  # a 4-byte start code's zero, trailing zeros
            end -= 1
        if start < end:
            yield au[start] & 0x1F, au[start:end]
        pos = nxt


def for_players(au: bytes) -> bytes:
    """``au`` with 4-byte start codes, without AUD/SEI, followed by the two AUDs."""
    kept = [unit for nal_type, unit in nal_units(au) if nal_type not in DROPPED]
    return b"".join(b"\x00\x00\x00\x01" + unit for unit in kept) + TRAILER
