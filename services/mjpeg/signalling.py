"""WebRTC signalling in the dialects printer UIs speak, relayed to the webrtc service.

``/webrtc`` (camera-streamer's JSON, used by Mainsail and Fluidd as
``webrtc-camerastreamer`` and by OctoPrint's ``webrtc://`` URLs) and ``/whep`` (WHEP, used as
``webrtc-mediamtx``, by OBS and GStreamer). The bytes follow PROTOCOLS.md. Bad requests get a
4xx with a reason; nothing here can disturb another viewer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote

from aiohttp import web
from yarl import URL

from titanium.common.config import Config
from titanium.common.rpc import RpcError
from titanium.services.mjpeg.bodies import JSON_LIMIT, SDP_LIMIT, SDPFRAG_LIMIT, read_text
from titanium.services.mjpeg.errors import http_error
from titanium.services.mjpeg.keys import CONFIG, WEBRTC_RPC
from titanium.services.mjpeg.limits import LIMITS, client_address, grant_of, limit_signalling
from titanium.services.mjpeg.sdpfrag import parse_sdpfrag
from titanium.services.mjpeg.sessions import SESSION_RETRY_AFTER, STREAMS

log = logging.getLogger("titanium.mjpeg.signalling")
SIGNAL_TIMEOUT = 15.0  # ICE gathering on a busy board takes a while
STATUS = {
    "not_found": 404,
    "busy": 503,
    "timeout": 503,
    "disconnected": 503,
    "bad_sdp": 400,
    "bad_args": 400,
}
# A proxy in front: the Host it sends is not the one the client used.
PROXY_HEADERS = ("Via", "Forwarded", "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Prefix")
MAX_CANDIDATES = 64  # per request; a browser gathers a handful per interface


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
    """Relay one command; RpcErrors become the HTTP status their code stands for. A
    request the webrtc service took with it when it died is sent again, once: it is
    back in about a second and would never answer the lost one."""
    deadline = asyncio.get_running_loop().time() + SIGNAL_TIMEOUT
    for attempt in (1, 2):
        remaining = max(0.1, deadline - asyncio.get_running_loop().time())
        try:
            return await request.app[WEBRTC_RPC].call(cmd, timeout=remaining, **args)
        except RpcError as e:
            if e.code == "disconnected" and attempt == 1:
                log.info("webrtc service went away during %r; sending it again", cmd)
                continue
            if e.code == "too_many":  # a session cap (the webrtc service counts its peers)
                raise request.app[LIMITS].refuse(
                    "sessions", e.message, SESSION_RETRY_AFTER
                ) from None
            reason = e.message
            if e.code in ("timeout", "disconnected"):
                reason = "the WebRTC service is not answering; MJPEG still works at stream"
            raise http_error(STATUS.get(e.code, 500), reason) from None
    raise AssertionError("unreachable")


def _owner(request: web.Request) -> dict[str, Any]:
    """Who opens a session, for the webrtc service: the token it dies with, the address
    it counts against, and how many MJPEG streams those hold here (their caps are shared)."""
    grant = grant_of(request)
    token = grant.id if grant is not None else None
    address = client_address(request)
    request.app[STREAMS].remember(grant)
    by_token, by_address = request.app[STREAMS].held(token, address)
    return {"token": token, "address": address, "streams": [by_token, by_address]}


def _holder(request: web.Request) -> str | None:
    """The token id a follow-up (answer, candidates, end) comes with: a session answers
    only the token it was opened with."""
    grant = grant_of(request)
    return grant.id if grant is not None else None


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
    limit_signalling(request)
    text = await read_text(request, JSON_LIMIT, "the body")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        raise http_error(400, f"the body is not JSON: {e}") from None
    except RecursionError:
        raise http_error(400, "the body is nested too deeply to be signalling") from None
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
            **_owner(request),
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
            **_owner(request),
        )
        return web.json_response({"type": "answer", "sdp": got["sdp"], "id": got["session"]})
    if kind == "answer":
        await _call(
            request,
            "answer",
            session=_text_field(body, "id"),
            sdp=_text_field(body, "sdp"),
            token=_holder(request),
        )
        return web.json_response({})
    if kind == "remote_candidate":
        candidates = _candidates(body.get("candidates"))
        await _call(
            request,
            "candidates",
            session=_text_field(body, "id"),
            candidates=candidates,
            token=_holder(request),
        )
        return web.json_response({})
    raise http_error(
        400, f"unknown type {kind!r}; expected request, offer, answer or remote_candidate"
    )


def _candidates(value: Any) -> list[dict[str, Any]]:
    """Browser RTCIceCandidateInit dicts, only the fields the webrtc service reads."""
    if not isinstance(value, list):
        raise http_error(400, "'candidates' must be a list")
    if len(value) > MAX_CANDIDATES:
        raise http_error(400, f"at most {MAX_CANDIDATES} candidates per request")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("candidate", ""), str):
            raise http_error(400, "each candidate is {candidate, sdpMid, sdpMLineIndex}")
        mid, index = item.get("sdpMid"), item.get("sdpMLineIndex")
        if mid is not None and not isinstance(mid, str):
            raise http_error(400, "a candidate's sdpMid must be a string or null")
        if index is not None and (type(index) is not int or not 0 <= index < 256):
            raise http_error(400, "a candidate's sdpMLineIndex must be a small number or null")
        out.append({"candidate": item.get("candidate", ""), "sdpMid": mid, "sdpMLineIndex": index})
    return out


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
    limit_signalling(request)
    if request.content_type != "application/sdp":
        raise http_error(415, "a WHEP offer is sent as Content-Type: application/sdp")
    sdp = await read_text(request, SDP_LIMIT, "the offer")
    got = await _call(
        request,
        "offer",
        camera=_camera(request),
        sdp=sdp,
        dialect="whep",
        priority=_priority(request),
        **_owner(request),
    )
    session = got["session"]
    location = _session_url(request, session)
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


def _session_url(request: web.Request, session: str) -> str:
    """The session's ``Location``. RFC 9725 resolves it against the endpoint URL, but
    some players (Eyevinn's) resolve it against their page, on another server. An absolute
    URL serves both, when we know the URL the client used: the request came straight to
    us (its Host names our port, no proxy headers), or the proxy said where it mounts us
    (X-Forwarded-Host, -Proto, -Prefix). Otherwise, behind a prefix nginx strips, only a
    relative reference stays under that prefix."""
    # A token that came in the query goes on with the session (PATCH and DELETE need it);
    # one in the path (/t/TOKEN/) is in request.path already.
    token = request.query.get("token")
    session = f"{session}?token={quote(token, safe='')}" if token else session
    headers = request.headers
    forwarded_host = headers.get("X-Forwarded-Host")
    if forwarded_host:
        proto = headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
        prefix = headers.get("X-Forwarded-Prefix", "").rstrip("/")
        return f"{proto}://{forwarded_host.split(',')[0].strip()}{prefix}{request.path}/{session}"
    proxied = any(name in headers for name in PROXY_HEADERS)
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    local_port = sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else None
    try:
        host_port = URL(f"http://{request.host}").explicit_port
    except ValueError:
        host_port = None
    # nginx's default Host for proxy_pass http://127.0.0.1:8080/ looks direct; a page
    # from a remote origin shows that it is not.
    origin = URL(headers.get("Origin", "null"))
    loopback = ("127.0.0.1", "localhost", "[::1]", "::1")
    relayed = request.host.rsplit(":", 1)[0] in loopback and origin.host not in (None, *loopback)
    if not proxied and not relayed and host_port is not None and host_port == local_port:
        return f"{request.scheme}://{request.host}{request.path}/{session}"
    return f"whep/{session}"


async def whep_patch(request: web.Request) -> web.Response:
    limit_signalling(request)
    if request.content_type != "application/trickle-ice-sdpfrag":
        raise http_error(415, "trickle candidates are sent as application/trickle-ice-sdpfrag")
    try:
        candidates = parse_sdpfrag(await read_text(request, SDPFRAG_LIMIT, "the sdpfrag"))
    except ValueError as e:
        raise http_error(400, str(e)) from None
    await _call(
        request,
        "candidates",
        session=request.match_info["session"],
        candidates=candidates,
        token=_holder(request),
    )
    return web.Response(status=204)


async def whep_delete(request: web.Request) -> web.Response:
    # Not rate-limited: a client over its limit must still be able to end what it holds.
    await _call(request, "close", session=request.match_info["session"], token=_holder(request))
    return web.Response(status=200)


WHEP_HEADERS = ("Content-Type", "If-Match", "Authorization")
WHEP_EXPOSE = ("ETag", "ID", "Accept-Patch", "Link", "Location")
