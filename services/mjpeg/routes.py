"""Every route of the front door, in one table: its path, its handler for each method, and
what a browser on another origin may send it and read from it (cors.py writes that on
every reply), and what a request's token must allow (auth.py). Camera routes also answer
under ``/CAMERA/`` (``/cam1/stream``), and every route under ``/t/TOKEN/`` (before a camera
too: ``/t/TOKEN/cam1/stream``); every route works under any prefix a proxy strips, since pages
use relative URLs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from titanium.services.mjpeg import auth, cors, go2rtc, hlsstream, signalling
from titanium.services.mjpeg.jmuxer import jmuxer
from titanium.services.mjpeg.page import index, serves_page, viewer_script
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
    # With http.auth 'token': the right it needs, whether it serves one camera (the token
    # must cover it), and which requests it serves without a token (auth.Access).
    right: str = "view"
    camera: bool = True
    public: Callable[[web.Request], bool] | None = None
    query: str = "camera"  # the query parameter naming the camera


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
    # Mainsail's jmuxer-stream: a WebSocket of binary H.264 (jmuxer.py).
    Route("/jmuxer", {"GET": jmuxer}, per_camera=True),
    # hlsstream (Mainsail's and Fluidd's hls.js, Safari, Video.js): LL-HLS (hlsstream.py).
    Route("/hls/index.m3u8", {"GET": hlsstream.multivariant}, per_camera=True),
    Route("/hls/stream.m3u8", {"GET": hlsstream.media}, per_camera=True),
    Route(
        r"/hls/{name:(init|seg|part)[0-9]{1,10}\.mp4}",
        {"GET": hlsstream.media_file},
        per_camera=True,
    ),
    # The page and its scripts carry no video, status or signalling: they load without a
    # token, and the page passes its own on. ?action=stream|snapshot is a camera's video.
    Route("/", {"GET": index}, expose=TIMESTAMP, public=serves_page),
    Route("/{script:[a-z-]+}.js", {"GET": viewer_script}, public=lambda request: True),
    Route("/status", {"GET": status}, camera=False),  # a token sees its cameras' part
    # go2rtc's API (go2rtc.py): ?src= names the camera. /stream.html is go2rtc's page.
    Route("/stream.html", {"GET": index}, expose=TIMESTAMP, public=serves_page),
    Route("/api/ws", {"GET": go2rtc.websocket}, query="src"),
    Route("/api/webrtc", {"POST": go2rtc.webrtc_post}, ("Content-Type",), query="src"),
    Route("/api/frame.jpeg", {"GET": go2rtc.frame_jpeg}, expose=TIMESTAMP, query="src"),
    Route("/api/stream.mjpeg", {"GET": go2rtc.stream_mjpeg}, query="src"),
    Route("/api/streams", {"GET": go2rtc.streams}, camera=False),  # the token's cameras
)


def add_routes(app: web.Application) -> None:
    # Token prefixes last: a camera named "t" keeps its own /t/stream.
    prefixes = ("", "/{camera}", auth.TOKEN_PREFIX, auth.TOKEN_PREFIX + "/{camera}")
    for prefix in prefixes:
        for r in ROUTES:
            if prefix.endswith("{camera}") and not r.per_camera:
                continue
            resource = cors.add(app, prefix + r.path, r.handlers, r.headers, r.expose, r.options)
            auth.record(app, resource, auth.Access(r.right, r.camera, r.public, r.query))
