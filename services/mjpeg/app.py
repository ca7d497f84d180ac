"""The HTTP front door's application: the objects every handler shares (one feed per
camera, the bus link, the RPC clients), their tasks, and their orderly end. Its routes are
listed in routes.py."""

from __future__ import annotations

import asyncio
from typing import Any

import zmq.asyncio
from aiohttp import web

from titanium.common.config import Config
from titanium.common.endpoints import Endpoints
from titanium.common.messages import Heartbeat
from titanium.common.rpc import RpcClient
from titanium.common.service import run_until_cancelled
from titanium.services.mjpeg import auth, cors, errors, h264feed, hlsmuxer
from titanium.services.mjpeg.buslink import BusLink
from titanium.services.mjpeg.feed import CameraFeed
from titanium.services.mjpeg.health import Health
from titanium.services.mjpeg.keys import (
    BUS,
    CONFIG,
    FEEDS,
    GOVERNOR_RPC,
    HEALTH,
    HEARTBEATS,
    STARTED,
    WEBRTC_RPC,
)
from titanium.services.mjpeg.limits import LIMITS, Limits
from titanium.services.mjpeg.routes import add_routes
from titanium.services.mjpeg.sessions import STREAMS, Streams, end_expired, end_sessions_of


def make_app(config: Config, ctx: zmq.asyncio.Context, started: float) -> web.Application:
    app = web.Application(middlewares=[errors.last_resort, auth.enforce])
    app.on_response_prepare.append(cors.write_headers)
    app[CONFIG] = config
    auth.install(app, config)  # app[auth.AUTH], its revocation reader, the open-port warning
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
    app[WEBRTC_RPC] = RpcClient(ctx, endpoints.webrtc_rpc())
    app[GOVERNOR_RPC] = RpcClient(ctx, endpoints.governor_rpc())
    app[BUS] = BusLink(config, ctx, started)
    # The H.264 WebSocket dialects' feeds; their demand goes out on the front door's PUB.
    h264feed.install(app, endpoints, [c.id for c in config.cameras], ctx, app[BUS].pub.publish)
    hlsmuxer.install(app)  # LL-HLS muxers on those feeds, started by requests
    app[LIMITS] = Limits(config.http.limits)
    app[STREAMS] = Streams()

    async def end_revoked(token_ids: set[str]) -> None:
        await end_sessions_of(app, token_ids)

    app[auth.AUTH].on_revoked.append(end_revoked)  # auth reads revocations; this ends them
    add_routes(app)

    async def feeds_ctx(app: web.Application) -> Any:
        feeds = list(app[FEEDS].values())
        body = asyncio.ensure_future(
            run_until_cancelled(
                [*(f.run() for f in feeds), app[HEALTH].run(), app[BUS].run(), end_expired(app)],
                [
                    *(f.close for f in feeds),
                    app[HEALTH].close,
                    app[WEBRTC_RPC].close,
                    app[GOVERNOR_RPC].close,
                    app[BUS].close,
                ],
            )
        )
        yield
        body.cancel()
        await asyncio.gather(body, return_exceptions=True)

    async def end_streams(app: web.Application) -> None:
        for feed in app[FEEDS].values():
            feed.end_viewers()

    app.on_shutdown.append(end_streams)
    app.cleanup_ctx.append(feeds_ctx)
    return app
