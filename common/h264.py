"""H.264 Annex B access units as every process that handles them walks them: the encoder
(services/encoder/nal.py), the front door's WebSocket dialects (services/mjpeg/annexb.py) and
its LL-HLS muxer (services/mjpeg/hls/). Standard library only: the muxer's imports stay light."""

from __future__ import annotations

from collections.abc import Iterator

NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 1, 5, 6, 7, 8, 9
START = b"\x00\x00\x01"


def iter_nals(au: bytes) -> Iterator[tuple[int, int, int]]:
    """(nal_type, start, end) of each NAL unit in ``au``; start is the header byte, end
    excludes the next start code. A 4-byte start code's leading zero ends the previous NAL
    (a trailing zero byte is allowed there by the spec and harmless)."""
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
