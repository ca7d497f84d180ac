"""``/``: the viewer page and its scripts, and mjpg-streamer's ``/?action=`` URLs."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from titanium.services.mjpeg.stream import snapshot, stream


def serves_page(request: web.Request) -> bool:
    """``/`` answers with the viewer page, not a camera's stream or snapshot."""
    return "action" not in request.query


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


VIEWER_SCRIPTS = (
    "titanium-video.js",
    "timecode.js",
    "whep.js",
    "mjpegcanvas.js",
    "webcodecs.js",
    "llhls.js",
    "fallbacks.js",
)


async def viewer_script(request: web.Request) -> web.Response:
    """The ``<titanium-video>`` element and the modules it imports (``/titanium-video.js``,
    ``/timecode.js``, ``/whep.js``, ``/mjpegcanvas.js``): plain ES modules, no build step."""
    name = request.match_info["script"] + ".js"
    if name not in VIEWER_SCRIPTS:
        raise web.HTTPNotFound(text=f"no script {name}\n")
    script = resources.files("titanium.services.mjpeg").joinpath(f"static/{name}")
    return web.Response(
        text=script.read_text(),
        content_type="text/javascript",
        headers={"Cache-Control": "no-cache"},  # an upgraded Titanium serves the new viewer
    )
