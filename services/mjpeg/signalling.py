"""WebRTC signalling in the dialects printer UIs speak, relayed to the webrtc service.

``/webrtc`` (camera-streamer's JSON, used by Mainsail and Fluidd as
``webrtc-camerastreamer`` and by OctoPrint's ``webrtc://`` URLs) and ``/whep`` (WHEP, used as
``webrtc-mediamtx``, by OBS and GStreamer). The bytes follow PROTOCOLS.md. Bad requests get a
4xx with a reason; nothing here can disturb another viewer.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from titanium.common.config import Config
from titanium.common.rpc import RpcError
from titanium.services.mjpeg import cors
from titanium.services.mjpeg.errors import http_error
from titanium.services.mjpeg.keys import CONFIG, RPC
from titanium.services.mjpeg.sdpfrag import parse_sdpfrag

SIGNAL_TIMEOUT = 15.0  # ICE gathering on a busy board takes a while
STATUS = {"not_found": 404, "busy": 503, "timeout": 503, "bad_sdp": 400, "bad_args": 400}


def _config(request: web.Request) -> Config:
    return request.app[CONFIG]


def _camera(request: web.Request) -> str:
    config = _config(request)
    name = request.match_info.get("camera") or request.query.get("camera")
    return name or config.cameras[0].id


def _priority(request: web.Request) -> str:
    """``?priority=`` of the viewer's URL, relayed as is (the webrtc service checks it)."""
    return request.query.get("priority") or "medium"


async def _call(request: web.Request, cmd: str, **args: Any) -> Any:
    """Relay one command; RpcErrors become the HTTP status their code stands for."""
    try:
        return await request.app[RPC].call(cmd, timeout=SIGNAL_TIMEOUT, **args)
    except RpcError as e:
        reason = e.message
        if e.code == "timeout":
            reason = "the WebRTC service is not answering; MJPEG still works at stream"
        raise http_error(STATUS.get(e.code, 500), reason) from None


def _ice_json(config: Config) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s in config.ice_servers:
        entry: dict[str, Any] = {"urls": list(s.urls)}
        if s.username is not None:
            entry.update(username=s.username, credential=s.credential)
        out.append(entry)
    return out


async def camera_streamer(request: web.Request) -> web.Response:
    """POST /webrtc. Mainsail sends no Content-Type: the body is JSON whatever the header."""
    try:
        body = json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise http_error(400, f"the body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise http_error(400, "the body must be a JSON object with a 'type'")
    kind = body.get("type")
    if kind == "request":
        keepalive = bool(body.get("keepAlive", False))
        got = await _call(
            request,
            "request",
            camera=_camera(request),
            keepalive=keepalive,
            priority=_priority(request),
        )
        return web.json_response(
            {
                "id": got["session"],
                "type": "offer",
                "sdp": got["sdp"],
                "iceServers": _ice_json(_config(request)),
                "keepAlive": keepalive,
            }
        )
    if kind == "offer":  # OctoPrint: the client offers, ICE complete, and wants the answer
        sdp = _text_field(body, "sdp")
        got = await _call(
            request,
            "offer",
            camera=_camera(request),
            sdp=sdp,
            dialect="octoprint",
            priority=_priority(request),
        )
        return web.json_response({"type": "answer", "sdp": got["sdp"], "id": got["session"]})
    if kind == "answer":
        await _call(
            request, "answer", session=_text_field(body, "id"), sdp=_text_field(body, "sdp")
        )
        return web.json_response({})
    if kind == "remote_candidate":
        candidates = body.get("candidates")
        if not isinstance(candidates, list):
            raise http_error(400, "'candidates' must be a list")
        await _call(request, "candidates", session=_text_field(body, "id"), candidates=candidates)
        return web.json_response({})
    raise http_error(
        400, f"unknown type {kind!r}; expected request, offer, answer or remote_candidate"
    )


def _text_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise http_error(400, f"'{name}' must be a non-empty string")
    return value


async def whep_options(request: web.Request) -> web.Response:
    """OPTIONS: exactly 204, the ICE servers as Link headers (RFC 9725 section 4.4)."""
    response = web.Response(status=204)
    for s in _config(request).ice_servers:
        for url in s.urls:
            link = f'<{url}>; rel="ice-server"'
            if s.username is not None:
                link += (
                    f'; username="{s.username}"; credential="{s.credential}"; '
                    'credential-type="password"'
                )
            response.headers.add("Link", link)
    return response


async def whep_post(request: web.Request) -> web.Response:
    if request.content_type != "application/sdp":
        raise http_error(415, "a WHEP offer is sent as Content-Type: application/sdp")
    sdp = await request.text()
    got = await _call(
        request,
        "offer",
        camera=_camera(request),
        sdp=sdp,
        dialect="whep",
        priority=_priority(request),
    )
    session = got["session"]
    # Relative: resolved against this request's URL it stays under nginx's prefix.
    location = f"whep/{session}"
    return web.Response(
        status=201,
        body=got["sdp"].encode(),
        content_type="application/sdp",
        headers={
            "Location": location,
            "ETag": f'"{session}"',
            "ID": session,
            "Accept-Patch": "application/trickle-ice-sdpfrag",
        },
    )


async def whep_patch(request: web.Request) -> web.Response:
    if request.content_type != "application/trickle-ice-sdpfrag":
        raise http_error(415, "trickle candidates are sent as application/trickle-ice-sdpfrag")
    try:
        candidates = parse_sdpfrag(await request.text())
    except ValueError as e:
        raise http_error(400, str(e)) from None
    await _call(request, "candidates", session=request.match_info["session"], candidates=candidates)
    return web.Response(status=204)


async def whep_delete(request: web.Request) -> web.Response:
    await _call(request, "close", session=request.match_info["session"])
    return web.Response(status=200)


WHEP_HEADERS = ("Content-Type", "If-Match", "Authorization")
WHEP_EXPOSE = ("ETag", "ID", "Accept-Patch", "Link", "Location")


def add_routes(app: web.Application) -> None:
    """Fluidd sends If-Match with its trickle PATCH, OBS and GStreamer a Bearer token."""
    for prefix in ("", "/{camera}"):
        cors.add(app, f"{prefix}/webrtc", {"POST": camera_streamer}, headers=("Content-Type",))
        cors.add(
            app,
            f"{prefix}/whep",
            {"POST": whep_post},
            headers=WHEP_HEADERS,
            expose=WHEP_EXPOSE,
            options=whep_options,
        )
        cors.add(
            app,
            f"{prefix}/whep/{{session}}",
            {"PATCH": whep_patch, "DELETE": whep_delete},
            headers=WHEP_HEADERS,
            expose=WHEP_EXPOSE,
        )
