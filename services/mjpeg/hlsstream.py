"""The LL-HLS dialect (Moonraker service ``hlsstream``: Mainsail's and Fluidd's hls.js,
Safari, Video.js) under ``/hls/`` (``/CAMERA/hls/``), as PROTOCOLS.md "More dialects / HLS"
says:

- ``index.m3u8`` (multivariant) and ``stream.m3u8`` (media): the first playlist request of
  a camera starts its muxer and is held until the first segment is complete (hls.js gives a
  manifest 20 s, while a 503 costs it a second's back-off and a retry); only past
  ``FIRST_SEGMENT_TIMEOUT`` does it answer 503 with Retry-After and the reason;
- blocking playlist reload: ``_HLS_msn`` (and ``_HLS_part``) hold the media playlist until
  that part exists; a value that is not a count, a part without a segment, or a segment
  more than two ahead is 400 with the reason;
- ``init<v>.mp4``, ``seg<msn>.mp4``, ``part<id>.mp4``: the preload hint's part is held
  until it exists; one gone from the window (or never made) is 404;
- the request's query less ``_HLS_*`` (a ``?token=``) is written into every URI, which
  resolve relative to the playlist, so ``/t/TOKEN/`` prefixes and proxies' prefixes work too.

Viewers share the camera's one muxer (hlsmuxer.py); CORS and auth are the routes' (routes.py).
"""

from __future__ import annotations

import re

from aiohttp import web

from titanium.services.mjpeg.hls.playlist import strip_hls_params
from titanium.services.mjpeg.hls.segmenter import Segmenter, TooFarAhead
from titanium.services.mjpeg.hlsmuxer import HLS_MUXERS, HlsMuxer
from titanium.services.mjpeg.viewerargs import camera_named

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MEDIA_TYPE = "video/mp4"
# From the first request: a keyframe asked for on join, then one segment (~1 s, up to the
# next IDR after it: keyframe_interval). Well within hls.js's manifest timeout of 20 s.
FIRST_SEGMENT_TIMEOUT = 12.0
# RFC 8216bis 6.2.5.2: a blocked request should be answered within three target durations.
BLOCK_TARGETS = 3
# Playlists and init segments change under the same name (a muxer's restart, a new SPS).
NO_CACHE = {"Cache-Control": "no-cache"}
COUNT = re.compile(r"[0-9]{1,10}")


def _camera(request: web.Request) -> str:
    return camera_named(request, request.app[HLS_MUXERS].feeds)


def _unavailable(reason: str) -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(text=reason + "\n", headers={"Retry-After": "1", **NO_CACHE})


async def _ready(request: web.Request) -> HlsMuxer:
    """The camera's muxer, started if need be, once its window holds a segment."""
    cam = _camera(request)
    muxer = request.app[HLS_MUXERS].start(cam)
    try:
        await muxer.segmenter.wait_ready(FIRST_SEGMENT_TIMEOUT)
    except TimeoutError:
        raise _unavailable(
            f"no LL-HLS segment of {cam} yet: the encoder sent no keyframe"
            f" in {FIRST_SEGMENT_TIMEOUT:g} s"
        ) from None
    finally:
        muxer.alive()
    return muxer


def _block_timeout(seg: Segmenter) -> float:
    longest = max((s.seconds for s in seg.segments), default=1.0)
    return BLOCK_TARGETS * max(1.0, longest)


def _playlist(text: str | None, cam: str) -> web.Response:
    if text is None:  # the window started again (a new SPS) while we held the request
        raise _unavailable(f"the LL-HLS window of {cam} is starting again")
    return web.Response(text=text, content_type=PLAYLIST_TYPE, headers=NO_CACHE)


async def multivariant(request: web.Request) -> web.Response:
    """``GET /hls/index.m3u8``: the multivariant playlist naming ``stream.m3u8``."""
    seg = (await _ready(request)).segmenter
    query = strip_hls_params(request.rel_url.raw_query_string)
    return _playlist(seg.multivariant_playlist(query), _camera(request))


def _directive(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None:
        return None
    if not COUNT.fullmatch(text):
        raise web.HTTPBadRequest(text=f"{name} must be a whole number from 0 up, not {text!r}\n")
    return int(text)


async def media(request: web.Request) -> web.Response:
    """``GET /hls/stream.m3u8[?_HLS_msn=M[&_HLS_part=P]]``: the media playlist, held until
    segment M (part P of it) is listed."""
    msn = _directive(request, "_HLS_msn")
    part = _directive(request, "_HLS_part")
    if part is not None and msn is None:
        raise web.HTTPBadRequest(text="_HLS_part needs _HLS_msn\n")
    muxer = await _ready(request)
    seg, cam = muxer.segmenter, muxer.camera_id
    if msn is not None:
        try:
            await seg.wait_for(msn, part, _block_timeout(seg))
        except TooFarAhead as e:
            raise web.HTTPBadRequest(text=f"_HLS_msn={msn}: {e}\n") from None
        except TimeoutError:
            raise _unavailable(
                f"segment {msn} part {part} of {cam} did not come in time: the stream stalled"
            ) from None
        finally:
            muxer.alive()
    query = strip_hls_params(request.rel_url.raw_query_string)
    return _playlist(seg.media_playlist(query), cam)


async def media_file(request: web.Request) -> web.Response:
    """``GET /hls/{init<v>|seg<msn>|part<id>}.mp4``; the hinted next part is held until
    it exists."""
    cam = _camera(request)
    name = request.match_info["name"]
    muxer: HlsMuxer | None = request.app[HLS_MUXERS].running(cam)
    if muxer is None:
        raise web.HTTPNotFound(
            text=f"no LL-HLS muxer runs for {cam}: it starts with a playlist request\n"
        )
    seg = muxer.segmenter
    try:
        data = await seg.wait_for_part(name, _block_timeout(seg))
    except TimeoutError:
        raise _unavailable(f"{name} of {cam} did not come in time: the stream stalled") from None
    finally:
        muxer.alive()
    if data is None:
        raise web.HTTPNotFound(text=f"{name} is not in the LL-HLS window of {cam}\n")
    headers = NO_CACHE if name.startswith("init") else {}
    return web.Response(body=data, content_type=MEDIA_TYPE, headers=headers)
