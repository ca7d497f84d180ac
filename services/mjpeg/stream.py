"""MJPEG streams and snapshots, in every dialect printer UIs use (PROTOCOLS.md): the
camera a request names, the viewer's priority, and one JPEG per frame shared by everyone."""

from __future__ import annotations

from aiohttp import web

from titanium.services.mjpeg.fanout import Viewer
from titanium.services.mjpeg.feed import CameraFeed
from titanium.services.mjpeg.keys import BUS, CONFIG, FEEDS
from titanium.services.mjpeg.limits import limit_snapshot
from titanium.services.mjpeg.multipart import OPENING, STREAM_HEADERS
from titanium.services.mjpeg.sessions import stream_session
from titanium.services.mjpeg.viewerargs import camera_named, viewer_priority


def _feed(request: web.Request, name: str | None = None) -> CameraFeed:
    feeds = request.app[FEEDS]
    return feeds[camera_named(request, feeds, name)]


async def stream(request: web.Request, camera: str | None = None) -> web.StreamResponse:
    """The MJPEG stream of ``camera`` (other dialects name it their way), else of the
    camera the request names."""
    feed = _feed(request, camera)
    priority = viewer_priority(request)
    # Held by its token and address: capped per each, ended when the token is revoked.
    async with stream_session(request):
        return await _stream(request, feed, priority)


async def _stream(request: web.Request, feed: CameraFeed, priority: str) -> web.StreamResponse:
    viewers = request.app[BUS]
    limit = request.app[CONFIG].streaming.max_viewers
    if feed.viewers >= limit:
        raise web.HTTPServiceUnavailable(
            text=f"camera {feed.camera_id} already has {limit} viewers "
            "(titanium.streaming.max_viewers); try again later\n",
            headers={"Retry-After": "5"},
        )
    if not viewers.admits(priority):
        raise web.HTTPServiceUnavailable(
            text=f"{priority}-priority viewers are not served now: {viewers.reason}\n",
            headers={"Retry-After": "10"},
        )
    response = web.StreamResponse(headers=STREAM_HEADERS)
    feed.viewers += 1
    try:
        with viewers.watching(feed.camera_id, priority):
            await response.prepare(request)
            await response.write(OPENING)
            transport = request.transport
            if transport is None or transport.is_closing():
                return response
            chunked = response.headers.get("Transfer-Encoding") == "chunked"
            # The governor sheds viewers below its admission (memory, critical print
            # phases): checked per frame, and a paused camera still sends one a second.
            viewer = Viewer(transport, chunked, lambda: viewers.admits(priority))
            feed.watch(viewer)
            try:
                # Frames are written by the feed, once per frame for every viewer: this
                # handler only waits for its end (stopping, shed, or the client gone).
                await viewer.ended
            finally:
                feed.unwatch(viewer)
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        feed.viewers -= 1
    return response


async def snapshot(request: web.Request, camera: str | None = None) -> web.Response:
    feed = _feed(request, camera)
    limit_snapshot(request)
    frame = await feed.snapshot()
    if frame is None:
        raise web.HTTPServiceUnavailable(
            text=f"camera {feed.camera_id} has not delivered a frame yet\n",
            headers={"Retry-After": "1"},
        )
    return web.Response(
        body=frame.jpeg,
        content_type="image/jpeg",
        headers={"Cache-Control": "no-store", "X-Timestamp": f"{frame.wall:.6f}"},
    )
