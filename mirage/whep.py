"""Viewers' side of the proxy: WHEP (RFC 9725) at ``/d/DEVICE/whep/CAMERA`` with the proxy's
viewer tokens, exactly as docs/mirage-protocol.md lists the requests and their answers.

Every answer, errors included, carries the CORS headers: the proxy authenticates by token,
never by cookie, so any page may play a printer it holds a token for.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from titanium.common.tokens import Grant, TokenError, Tokens
from titanium.mirage.config import ProxyLimits, TurnConfig
from titanium.mirage.hub import Hub, Link, Session, SignalError
from titanium.mirage.limits import LimitError, ProxyLimiter
from titanium.mirage.turn import ice_servers
from titanium.services.mjpeg.sdpfrag import parse_sdpfrag
from titanium.services.webrtc.checks import candidate_problem, check_sdp

log = logging.getLogger("mirage.whep")

MAX_BODY = 64 * 1024
# TURN credentials outlive the session's start: coturn checks them on every allocation
# refresh, so they last as long as the token does, up to half a day.
TURN_TTL_MAX = 12 * 3600
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, Link, ETag",
}
PREFLIGHT = {
    "Access-Control-Allow-Methods": "OPTIONS, POST, PATCH, DELETE",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Max-Age": "600",
}
TOKEN_REASONS = {
    "missing": "this needs a token (?token= or Authorization: Bearer)",
    "bad": "the token is not one this proxy issued",
    "expired": "the token has expired",
    "revoked": "the token was revoked",
}


@dataclass(frozen=True)
class Viewers:
    hub: Hub
    tokens: Tokens
    turn: TurnConfig | None
    limits: ProxyLimiter = field(default_factory=lambda: ProxyLimiter(ProxyLimits()))


VIEWERS_KEY = web.AppKey("viewers", Viewers)


def _error(status: int, reason: str) -> web.HTTPException:
    exc = web.HTTPException(text=reason, content_type="text/plain")
    exc.set_status(status)
    return exc


@web.middleware
async def cors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = web.Response(
            status=exc.status, text=exc.text or exc.reason, content_type="text/plain"
        )
        kept = ("Retry-After", "WWW-Authenticate")
        response.headers.update({k: v for k, v in exc.headers.items() if k in kept})
    except Exception:
        # Logged here; the client gets a status and no exception's name or message.
        log.exception("%s %s failed", request.method, request.path)
        response = web.Response(status=500, text="internal error", content_type="text/plain")
    # Not once a device's WebSocket has sent its headers; not on /admin, which is for
    # Hydrogen and scripts: no page should reach it.
    if not response.prepared and not request.path.startswith("/admin"):
        response.headers.update(CORS)
    return response


def _token(request: web.Request) -> str | None:
    token = request.query.get("token")
    if token:
        return token
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def _grant(request: web.Request) -> tuple[Grant, str, str]:
    """The request's grant, device and camera, or 401/403."""
    viewers = request.app[VIEWERS_KEY]
    device, camera = request.match_info["device"], request.match_info["camera"]
    try:
        # Before the token is checked, so that a flood of bad tokens is held back too.
        viewers.limits.signalling_address(viewers.limits.client(request))
    except LimitError as e:
        raise e.response() from None
    try:
        grant = viewers.tokens.verify(_token(request))
    except TokenError as e:
        raise _error(401, TOKEN_REASONS.get(e.code, e.reason)) from None
    if not grant.devices:  # a LAN token (another key anyway) or one without devices
        raise _error(401, TOKEN_REASONS["bad"])
    if device not in grant.devices:
        raise _error(403, f"this token does not reach device {device}")
    if not grant.sees(camera):
        raise _error(403, f"this token does not show camera {camera}")
    try:
        viewers.limits.signalling_grant(grant.id, device)
    except LimitError as e:
        raise e.response() from None
    return grant, device, camera


def _ice(viewers: Viewers, grant: Grant, name: str) -> list[dict[str, Any]]:
    if viewers.turn is None:
        return []
    ttl = int(max(60, min(grant.expires - time.time(), TURN_TTL_MAX)))
    return ice_servers(viewers.turn.secret, list(viewers.turn.urls), name, ttl)


def _link_header(server: dict[str, Any]) -> str:
    return (
        f'<{server["urls"]}>; rel="ice-server"; username="{server["username"]}"; '
        f'credential="{server["credential"]}"; credential-type="password"'
    )


async def options(request: web.Request) -> web.Response:
    """A CORS preflight needs no token; otherwise the ICE servers for this token."""
    if "Access-Control-Request-Method" in request.headers:
        return web.Response(status=204, headers=PREFLIGHT)
    grant, _, _ = _grant(request)
    response = web.Response(status=204, headers=PREFLIGHT)
    for server in _ice(request.app[VIEWERS_KEY], grant, grant.id):
        response.headers.add("Link", _link_header(server))
    return response


async def _body(request: web.Request, content_type: str) -> str:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _error(413, f"the body is over {MAX_BODY // 1024} KiB")
    if request.content_type != content_type:
        raise _error(400, f"expected Content-Type: {content_type}")
    data = bytearray()
    # A chunked body has no Content-Length: counted as it arrives.
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > MAX_BODY:
            raise _error(413, f"the body is over {MAX_BODY // 1024} KiB")
    try:
        return bytes(data).decode()
    except UnicodeDecodeError:
        raise _error(400, "the body is not UTF-8 text") from None


def _online(viewers: Viewers, device: str, camera: str) -> Link:
    link = viewers.hub.online.get(device)
    if link is None:
        raise _error(503, f"device {device} is not connected")
    if camera not in link.cameras:
        announced = ", ".join(link.cameras) or "none"
        raise _error(404, f"device {device} has no camera {camera} (it has: {announced})")
    return link


async def post(request: web.Request) -> web.Response:
    viewers = request.app[VIEWERS_KEY]
    grant, device, camera = _grant(request)
    sdp = await _body(request, "application/sdp")
    try:
        check_sdp(sdp, "offer")
    except ValueError as e:
        raise _error(400, str(e)) from None
    link = _online(viewers, device, camera)
    limits = viewers.limits
    try:
        limits.sessions(grant.id, device, *viewers.hub.count(grant.id, device))
    except LimitError as e:
        raise e.response() from None
    sid = secrets.token_urlsafe(12)
    ice = _ice(viewers, grant, sid)  # the printer's own credential, for this session only
    slots = [("token", grant.id), ("device", device)]
    limits.starting.update(slots)
    try:
        session, answer = await viewers.hub.offer(
            link, sid, camera, sdp, grant.id, limits.client(request), ice, grant.expires
        )
    except SignalError as e:
        raise _error(e.status, e.reason) from None
    finally:
        limits.starting.subtract(slots)
        limits.starting += Counter()  # drops the zero counts: keys do not pile up
    token = _token(request) or ""
    try:
        # Revoked while the printer was answering: the revocation poll has already passed
        # this token by, so the session is ended here.
        viewers.tokens.verify(token)
    except TokenError as e:
        await viewers.hub.close(session)
        raise _error(401, TOKEN_REASONS.get(e.code, e.reason)) from None
    location = f"/d/{device}/whep/{camera}/{session.id}"
    if request.query.get("token"):
        location += f"?token={token}"
    return web.Response(
        status=201,
        body=answer.encode(),
        content_type="application/sdp",
        headers={"Location": location, "ETag": f'"{session.id}"'},
    )


def _session(request: web.Request, grant: Grant, device: str, camera: str) -> Session:
    session = request.app[VIEWERS_KEY].hub.sessions.get(request.match_info["session"])
    if (
        session is None
        or session.token != grant.id
        or session.link.device != device
        or session.camera != camera
    ):
        raise _error(404, "no such session (it ended, or is another token's)")
    return session


async def patch(request: web.Request) -> web.Response:
    grant, device, camera = _grant(request)
    session = _session(request, grant, device, camera)
    text = await _body(request, "application/trickle-ice-sdpfrag")
    try:
        candidates = parse_sdpfrag(text)
    except ValueError as e:
        raise _error(400, f"sdpfrag: {e}") from None
    for c in candidates:
        problem = candidate_problem(c["candidate"])
        if problem:
            raise _error(400, f"sdpfrag: candidate: {problem}")
    if candidates:
        await session.link.send(
            {"type": "candidates", "session": session.id, "candidates": candidates}
        )
    return web.Response(status=204)


async def delete(request: web.Request) -> web.Response:
    grant, device, camera = _grant(request)
    await request.app[VIEWERS_KEY].hub.close(_session(request, grant, device, camera))
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    base = "/d/{device}/whep/{camera}"
    app.router.add_route("OPTIONS", base, options)
    app.router.add_post(base, post)
    app.router.add_route("OPTIONS", base + "/{session}", options)
    app.router.add_patch(base + "/{session}", patch)
    app.router.add_delete(base + "/{session}", delete)
