"""The NAL units of an Annex-B access unit, for the muxer. The encoder has the same walk
(services/encoder/nal.py), but a service imports no other service (STYLE.md): this stays
the front door's until the walk moves to common/."""

from __future__ import annotations

from collections.abc import Iterator

NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 6, 7, 8, 9
START = b"\x00\x00\x01"


def iter_nals(au: bytes) -> Iterator[tuple[int, int, int]]:
    """(nal_type, start, end) of each NAL unit: start is its header byte, end excludes the
    next start code (and a 4-byte start code's leading zero)."""
    pos = au.find(START)
    while pos >= 0:
        start = pos + 3
        nxt = au.find(START, start)
        end = len(au) if nxt < 0 else nxt
        if nxt > 0 and au[nxt - 1] == 0:
            end = nxt - 1
        if start < len(au):
            yield au[start] & 0x1F, start, end
        pos = nxt
