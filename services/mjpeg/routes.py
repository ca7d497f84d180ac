"""Every route of the front door, in one table: its path, its handler for each method, and
what a browser on another origin may send it and read from it (cors.py writes that on
every reply). Camera routes also answer under ``/CAMERA/`` (``/cam1/stream``); every route
works under any prefix a proxy strips, since pages use relative URLs.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from titanium.services.mjpeg import cors, signalling
from titanium.services.mjpeg.page import index, viewer_script
from titanium.services.mjpeg.status import status
from titanium.services.mjpeg.stream import snapshot, stream


@dataclass(frozen=True)
class Route:
    path: str
    handlers: dict[str, cors.Handler]
    headers: tuple[str, ...] = ()  # request headers beyond the CORS-safelisted ones
    expose: tuple[str, ...] = ()  # response headers the page may read
    options: cors.Handler = cors.preflight
    per_camera: bool = False  # also under /{camera}/


TIMESTAMP = ("X-Timestamp",)

ROUTES = (
    Route("/stream", {"GET": stream}, per_camera=True),
    Route("/snapshot", {"GET": snapshot}, expose=TIMESTAMP, per_camera=True),
    Route("/snapshot.jpg", {"GET": snapshot}, expose=TIMESTAMP, per_camera=True),
    Route("/webrtc", {"POST": signalling.camera_streamer}, ("Content-Type",), per_camera=True),
    # Fluidd sends If-Match with its trickle PATCH, OBS and GStreamer a Bearer token.
    Route(
        "/whep",
        {"POST": signalling.whep_post},
        signalling.WHEP_HEADERS,
        signalling.WHEP_EXPOSE,
        options=signalling.whep_options,
        per_camera=True,
    ),
    Route(
        "/whep/{session}",
        {"PATCH": signalling.whep_patch, "DELETE": signalling.whep_delete},
        signalling.WHEP_HEADERS,
        signalling.WHEP_EXPOSE,
        per_camera=True,
    ),
    Route("/", {"GET": index}, expose=TIMESTAMP),  # also ?action=stream|snapshot
    Route("/{script:[a-z-]+}.js", {"GET": viewer_script}),
    Route("/status", {"GET": status}),
)


def add_routes(app: web.Application) -> None:
    for prefix in ("", "/{camera}"):
        for r in ROUTES:
            if prefix and not r.per_camera:
                continue
            cors.add(app, prefix + r.path, r.handlers, r.headers, r.expose, r.options)
