"""The HTTP front door: MJPEG stream and snapshots in every dialect printer UIs use,
``/status``, and the viewer page, on one port and under any path prefix."""

from __future__ import annotations

import asyncio
import os
import time
from importlib import resources
from typing import Any

import zmq.asyncio
from aiohttp import web

from titanium.common.config import Config
from titanium.common.endpoints import Endpoints
from titanium.common.messages import Heartbeat
from titanium.services.mjpeg.feed import CameraFeed
from titanium.services.mjpeg.multipart import OPENING, STREAM_HEADERS

HEARTBEAT_STALE = 3.0
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
}
FEEDS = web.AppKey("feeds", dict[str, CameraFeed])
CONFIG = web.AppKey("config", Config)
HEARTBEATS = web.AppKey("heartbeats", dict[str, tuple[Heartbeat, float]])
STARTED = web.AppKey("started", float)


@web.middleware
async def cors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Both frontends fetch the stream from a worker in CORS mode: allow any origin."""
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=CORS)
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as e:
        e.headers.update(CORS)
        raise
    if not response.prepared:
        response.headers.update(CORS)
    return response


def _feed(request: web.Request) -> CameraFeed:
    """The camera named by the path (/cam1/stream) or ``?camera=``, else the first."""
    feeds = request.app[FEEDS]
    name = request.match_info.get("camera") or request.query.get("camera")
    if name is None:
        return next(iter(feeds.values()))
    if name not in feeds:
        raise web.HTTPNotFound(text=f"no camera {name!r}; cameras: {', '.join(feeds)}\n")
    return feeds[name]


async def stream(request: web.Request) -> web.StreamResponse:
    feed = _feed(request)
    limit = request.app[CONFIG].streaming.max_viewers
    if feed.viewers >= limit:
        raise web.HTTPServiceUnavailable(
            text=f"camera {feed.camera_id} already has {limit} viewers "
            "(titanium.streaming.max_viewers); try again later\n",
            headers={"Retry-After": "5"},
        )
    response = web.StreamResponse(headers=STREAM_HEADERS)
    feed.viewers += 1
    try:
        await response.prepare(request)
        await response.write(OPENING)
        latest, ready = feed.latest, feed.ready
        # A viewer starts on the current frame, never on one left from an earlier viewer.
        after = -1
        if latest is not None:
            current = ready is not None and latest.seq == ready.seq
            after = latest.n - 1 if current else latest.n
        while True:
            frame = await feed.next_frame(after)
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


def status_document(app: web.Application) -> dict[str, Any]:
    config = app[CONFIG]
    now = time.monotonic()
    cameras: dict[str, Any] = {}
    for cam in config.cameras:
        feed = app[FEEDS][cam.id]
        st = feed.status
        cameras[cam.id] = {
            "device": cam.device,
            "source": st.source if st else None,
            "online": st.online if st else False,
            "format": st.fourcc if st else None,
            "width": st.width if st else cam.resolution.width,
            "height": st.height if st else cam.resolution.height,
            "fps_configured": cam.fps,
            "fps_measured": st.fps_measured if st else 0.0,
            "frames": st.frames if st else 0,
            "frames_dropped": (st.dropped if st else 0) + feed.missed,
            "frames_dropped_capture": st.dropped if st else 0,
            "frames_dropped_delivery": feed.missed,
            "jpeg_frames": feed.jpeg_frames,
            "viewers": feed.viewers,
            "max_viewers": config.streaming.max_viewers,
            "error": st.error if st else "",
            "controls": st.controls if st else {},
        }
    services: dict[str, Any] = {
        "mjpeg": {
            "state": "running",
            "pid": os.getpid(),
            "uptime": round(time.time() - app[STARTED], 1),
        },
    }
    for cam in config.cameras:
        name = f"capture-{cam.id}"
        seen = app[HEARTBEATS].get(name)
        if seen is None:
            services[name] = {"state": "starting", "pid": None, "uptime": None}
            continue
        beat, at = seen
        stale = now - at > HEARTBEAT_STALE
        services[name] = {
            "state": "not responding" if stale else beat.state,
            "pid": beat.pid,
            "uptime": round(time.time() - beat.started, 1),
            "last_seen_s": round(now - at, 2),
        }
    return {"cameras": cameras, "services": services}


async def status(request: web.Request) -> web.Response:
    return web.json_response(status_document(request.app))


def make_app(config: Config, ctx: zmq.asyncio.Context, started: float) -> web.Application:
    app = web.Application(middlewares=[cors])
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
    routes = [
        web.get("/", index),
        web.get("/stream", stream),
        web.get("/snapshot", snapshot),
        web.get("/snapshot.jpg", snapshot),
        web.get("/status", status),
        web.get("/{camera}/stream", stream),
        web.get("/{camera}/snapshot", snapshot),
        web.get("/{camera}/snapshot.jpg", snapshot),
    ]
    app.add_routes(routes)

    async def feeds_ctx(app: web.Application) -> Any:
        tasks = [asyncio.ensure_future(f.run()) for f in app[FEEDS].values()]
        yield
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for f in app[FEEDS].values():
            f.close()

    app.cleanup_ctx.append(feeds_ctx)
    return app
