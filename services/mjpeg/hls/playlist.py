"""The LL-HLS playlist texts (RFC 8216bis), written from the segmenter's window.

Follows MediaMTX's muxer where the spec leaves a choice: parts listed for the last two
complete segments and the one in progress, a preload hint always (hls.js loops without it),
PART-HOLD-BACK of 2.5 part targets, a program date-time on every segment."""

from __future__ import annotations

import math
import time
from urllib.parse import parse_qsl, quote, urlencode

from titanium.services.mjpeg.hls.window import Part, Segment

PARTS_LISTED_FOR = 2  # complete segments whose parts the playlist lists


def strip_hls_params(raw_query: str) -> str:
    """The request's query less the client's _HLS_* directives, for :func:`uri`: a token
    in it must reach every segment URI, which resolves relative to the playlist."""
    kept = [
        (k, v) for k, v in parse_qsl(raw_query, keep_blank_values=True) if not k.startswith("_HLS_")
    ]
    return urlencode(kept, quote_via=quote)


def uri(name: str, query: str) -> str:
    # Quoted again so that nothing from the request can end the attribute or the line.
    return f"{name}?{quote(query, safe='=&%+-._~')}" if query else name


def date_time(wall: float) -> str:
    ms = round(wall * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def _part_line(part: Part, query: str) -> str:
    line = f'#EXT-X-PART:DURATION={part.seconds:.5f},URI="{uri(f"part{part.id}.mp4", query)}"'
    return line + (",INDEPENDENT=YES" if part.independent else "")


def media(
    segments: list[Segment],
    current: Segment | None,
    next_part_id: int,
    part_target: float,
    init_name: str,
    query: str,
) -> str:
    """The media playlist of ``segments`` (complete, oldest first) and the parts of
    ``current`` (in progress), with a hint for part ``next_part_id``."""
    target = max(1, math.ceil(max((s.seconds for s in segments), default=1.0)))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={2.5 * part_target:.5f}",
        f"#EXT-X-PART-INF:PART-TARGET={part_target:.5f}",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0].msn if segments else 0}",
        f'#EXT-X-MAP:URI="{uri(init_name, query)}"',
    ]
    for i, seg in enumerate(segments):
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{date_time(seg.wall)}")
        if len(segments) - i <= PARTS_LISTED_FOR:
            lines.extend(_part_line(p, query) for p in seg.parts)
        lines.append(f"#EXTINF:{seg.seconds:.5f},")
        lines.append(uri(f"seg{seg.msn}.mp4", query))
    if current is not None and current.parts:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{date_time(current.wall)}")
        lines.extend(_part_line(p, query) for p in current.parts)
    lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{uri(f"part{next_part_id}.mp4", query)}"')
    return "\n".join(lines) + "\n"


def multivariant(
    bandwidth: int, codecs: str, width: int, height: int, media_name: str, query: str
) -> str:
    """The multivariant playlist naming the one media playlist."""
    return (
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS="{codecs}",'
        f"RESOLUTION={width}x{height}\n{uri(media_name, query)}\n"
    )
