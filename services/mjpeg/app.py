"""The HTTP front door: MJPEG stream and snapshots in every dialect printer UIs use,
``/status``, and the viewer page, on one port and under any path prefix."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

import zmq.asyncio
from aiohttp import web

from titanium.common.config import Config
from titanium.common.endpoints import Endpoints
from titanium.common.messages import Heartbeat
from titanium.common.priority import parse_priority
from titanium.common.rpc import RpcClient
from titanium.services.mjpeg import cors, errors, signalling
from titanium.services.mjpeg.feed import CameraFeed
from titanium.services.mjpeg.health import Health
from titanium.services.mjpeg.keys import (
    CONFIG,
    FEEDS,
    GOVERNOR,
    HEALTH,
    HEARTBEATS,
    RPC,
    STARTED,
    VIEWERS,
)
from titanium.services.mjpeg.multipart import OPENING, STREAM_HEADERS
from titanium.services.mjpeg.status import status
from titanium.services.mjpeg.viewers import Viewers


def _feed(request: web.Request) -> CameraFeed:
    """The camera named by the path (/cam1/stream) or ``?camera=``, else the first."""
    feeds = request.app[FEEDS]
    name = request.match_info.get("camera") or request.query.get("camera")
    if name is None:
        return next(iter(feeds.values()))
    if name not in feeds:
        raise web.HTTPNotFound(text=f"no camera {name!r}; cameras: {', '.join(feeds)}\n")
    return feeds[name]


def _priority(request: web.Request) -> str:
    """``?priority=high|medium|low`` (common/priority.py), medium by default."""
    try:
        return parse_priority(request.query.get("priority"))
    except ValueError as e:
        raise web.HTTPBadRequest(text=f"{e}\n") from None


async def stream(request: web.Request) -> web.StreamResponse:
    feed = _feed(request)
    priority = _priority(request)
    viewers = request.app[VIEWERS]
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
            latest, ready = feed.latest, feed.ready
            # A viewer starts on the current frame, never on one left from an earlier viewer.
            after = -1
            if latest is not None:
                current = ready is not None and latest.seq == ready.seq
                after = latest.n - 1 if current else latest.n
            # The governor sheds viewers below its admission (memory, critical print
            # phases): checked per frame, and a paused camera still sends one a second.
            while viewers.admits(priority):
                frame = await feed.next_frame(after)
                if frame is None:  # stopping: the last part ended with its boundary
                    break
                # A slow viewer waits here for its socket to drain, then takes the newest
                # frame: it skips frames, it never queues them or holds up the others.
                await response.write(frame.part)
                after = frame.n
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        feed.viewers -= 1
    return response


async def snapshot(request: web.Request) -> web.Response:
    feed = _feed(request)
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


async def index(request: web.Request) -> web.StreamResponse:
    """``/``: ``?action=stream|snapshot`` (mjpg-streamer URLs), else the viewer page."""
    action = request.query.get("action")
    if action == "stream":
        return await stream(request)
    if action == "snapshot":
        return await snapshot(request)
    if action is not None:
        raise web.HTTPBadRequest(text=f"unknown action {action!r}; use stream or snapshot\n")
    page = resources.files("titanium.services.mjpeg").joinpath("static/index.html")
    return web.Response(text=page.read_text(), content_type="text/html")


VIEWER_SCRIPTS = ("titanium-video.js", "timecode.js", "whep.js")


async def viewer_script(request: web.Request) -> web.Response:
    """The ``<titanium-video>`` element and the modules it imports (``/titanium-video.js``,
    ``/timecode.js``, ``/whep.js``): plain ES modules, no build step."""
    name = request.match_info["script"] + ".js"
    if name not in VIEWER_SCRIPTS:
        raise web.HTTPNotFound(text=f"no script {name}\n")
    script = resources.files("titanium.services.mjpeg").joinpath(f"static/{name}")
    return web.Response(
        text=script.read_text(),
        content_type="text/javascript",
        headers={"Cache-Control": "no-cache"},  # an upgraded Titanium serves the new viewer
    )


def make_app(config: Config, ctx: zmq.asyncio.Context, started: float) -> web.Application:
    app = web.Application(middlewares=[errors.last_resort])
    app.on_response_prepare.append(cors.write_headers)
    app[CONFIG] = config
    app[STARTED] = started
    heartbeats: dict[str, tuple[Heartbeat, float]] = {}
    app[HEARTBEATS] = heartbeats
    endpoints = Endpoints(config.runtime_dir)
    app[FEEDS] = {
        cam.id: CameraFeed(
            cam.id, endpoints.capture_pub(cam.id), ctx, config.streaming.jpeg_quality, heartbeats
        )
        for cam in config.cameras
    }
    app[HEALTH] = Health(config, ctx, heartbeats)
    app[RPC] = RpcClient(ctx, endpoints.webrtc_rpc())
    app[GOVERNOR] = RpcClient(ctx, endpoints.governor_rpc())
    app[VIEWERS] = Viewers(config, ctx, started)
    for prefix in ("", "/{camera}"):
        cors.add(app, f"{prefix}/stream", {"GET": stream})
        cors.add(app, f"{prefix}/snapshot", {"GET": snapshot}, expose=("X-Timestamp",))
        cors.add(app, f"{prefix}/snapshot.jpg", {"GET": snapshot}, expose=("X-Timestamp",))
    cors.add(app, "/", {"GET": index}, expose=("X-Timestamp",))
    cors.add(app, "/{script:[a-z-]+}.js", {"GET": viewer_script})
    cors.add(app, "/status", {"GET": status})
    signalling.add_routes(app)

    async def feeds_ctx(app: web.Application) -> Any:
        tasks = [asyncio.ensure_future(f.run()) for f in app[FEEDS].values()]
        tasks.append(asyncio.ensure_future(app[HEALTH].run()))
        tasks.append(asyncio.ensure_future(app[VIEWERS].run()))
        yield
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for f in app[FEEDS].values():
            f.close()
        app[HEALTH].close()
        app[RPC].close()
        app[GOVERNOR].close()
        app[VIEWERS].close()

    async def end_streams(app: web.Application) -> None:
        for feed in app[FEEDS].values():
            feed.end_viewers()

    app.on_shutdown.append(end_streams)
    app.cleanup_ctx.append(feeds_ctx)
    return app
