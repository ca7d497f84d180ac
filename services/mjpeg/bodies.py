"""Request bodies read no further than a route needs, as text.

aiohttp would buffer up to its 1 MiB client_max_size for every signalling request, and
relay it over ZeroMQ: after a burst of such bodies the front door stayed 30-40 MB larger.
Real offers are a few KB; each route states its own bound and anything longer is refused
before (Content-Length) or while (chunked) it is read.
"""

from __future__ import annotations

from aiohttp import web

from titanium.services.mjpeg.errors import http_error

SDP_LIMIT = 64 * 1024  # a browser offer with audio, video and data: under 10 KB
JSON_LIMIT = 64 * 1024  # camera-streamer's JSON carries one SDP
SDPFRAG_LIMIT = 16 * 1024  # a trickle PATCH: a few candidates


async def read_text(request: web.Request, limit: int, what: str) -> str:
    """The body as UTF-8 text; 413 when longer than ``limit`` bytes, 400 when cut short
    or not UTF-8. ``what`` names the body in the reason ("the offer")."""
    too_long = f"{what} is longer than {limit // 1024} KiB"
    if request.content_length is not None and request.content_length > limit:
        raise http_error(413, too_long)
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > limit:
                raise http_error(413, too_long)
            chunks.append(chunk)
    except (ConnectionError, web.HTTPBadRequest, OSError):
        raise http_error(400, f"{what} was cut short") from None
    try:
        return b"".join(chunks).decode()
    except UnicodeDecodeError:
        raise http_error(400, f"{what} is not UTF-8 text") from None
