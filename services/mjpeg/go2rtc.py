"""go2rtc's API (``webrtc-go2rtc`` in Mainsail and Fluidd), relayed to the webrtc service
like the other signalling dialects (signalling.py). The bytes follow PROTOCOLS.md "More
dialects / go2rtc".

- ``GET /api/ws?src=CAMERA``: a WebSocket of JSON ``{type, value}`` messages. The client's
  ``webrtc/offer`` is answered with ``webrtc/answer`` (our SDP, its candidates in it, so we
  send no ``webrtc/candidate`` of ours); the client's ``webrtc/candidate`` values (bare
  ``candidate:`` strings, no mid) are relayed to the session like a WHEP trickle. A bad
  offer, an unknown camera or a limit is an ``error`` message (``"webrtc/offer: reason"``),
  logged, and the socket stays open for another offer. The socket owns its session: a new
  offer replaces it and closing the socket ends it.
- ``POST /api/webrtc?src=``: JSON ``{type: "offer", sdp}`` answered by ``{type: "answer",
  sdp}``, or a raw SDP body answered by raw SDP; no trickle.
- ``/api/frame.jpeg``, ``/api/stream.mjpeg`` (stream.py's snapshot and stream) and
  ``/api/streams`` (the cameras, in go2rtc's shape).

Both frontends rewrite the stream URL ``<prefix>/?src=CAMERA`` (or
``<prefix>/stream.html?src=CAMERA``) to ``<prefix>/api/ws?src=CAMERA``; Mainsail adds
``media=video`` or ``media=video+audio`` (``+`` or ``%2B``), which is ignored: the offer
says what it wants.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from titanium.services.mjpeg import signalling
from titanium.services.mjpeg.auth import AUTH, Access
from titanium.services.mjpeg.bodies import JSON_LIMIT, SDP_LIMIT, read_text
from titanium.services.mjpeg.errors import http_error
from titanium.services.mjpeg.keys import CONFIG, GRANT, WEBRTC_RPC
from titanium.services.mjpeg.limits import limit_signalling
from titanium.services.mjpeg.sessions import STREAMS
from titanium.services.mjpeg.stream import snapshot, stream

log = logging.getLogger("titanium.mjpeg.go2rtc")
CLOSE_TIMEOUT = 2.0
MAX_CANDIDATES = signalling.MAX_CANDIDATES  # per offer, the queued ones included
ACCESS = Access(query="src")  # what every route here needs, but /api/streams (routes.py)


def _src(request: web.Request) -> str:
    """The camera ``?src=`` names (the auth middleware checked the token covers it), else
    the first, as Titanium's other routes default; 404 for one we do not have."""
    cameras = [c.id for c in request.app[CONFIG].cameras]
    name = request.query.get("src") or cameras[0]
    if name not in cameras:
        raise http_error(404, f"no camera {name!r}; cameras: {', '.join(cameras)}")
    return name


async def frame_jpeg(request: web.Request) -> web.StreamResponse:
    return await snapshot(request, _src(request))


async def stream_mjpeg(request: web.Request) -> web.StreamResponse:
    return await stream(request, _src(request))


async def streams(request: web.Request) -> web.Response:
    """go2rtc's ``{name: {producers, consumers}}``, of the cameras the token covers."""
    grant = request.get(GRANT)
    doc = {
        c.id: {"producers": [{"url": f"titanium:{c.id}"}], "consumers": []}
        for c in request.app[CONFIG].cameras
        if grant is None or grant.sees(c.id)
    }
    return web.json_response(doc)


async def webrtc_post(request: web.Request) -> web.Response:
    """POST /api/webrtc?src=: one offer with its candidates, one answer with ours."""
    camera = _src(request)
    limit_signalling(request)
    text = await read_text(request, JSON_LIMIT, "the body")
    as_json = text.lstrip().startswith("{")
    if as_json:
        try:
            body = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise http_error(
                400, 'the body is neither SDP nor JSON {"type": "offer", "sdp"}'
            ) from None
        if not isinstance(body, dict) or body.get("type", "offer") != "offer":
            raise http_error(400, 'the JSON body is {"type": "offer", "sdp": "v=0..."}')
        sdp = body.get("sdp")
        if not isinstance(sdp, str) or not sdp:
            raise http_error(400, "'sdp' must be a non-empty string")
    else:
        sdp = text
    got = await _offer(request, camera, sdp, "go2rtc-post")
    if as_json:
        return web.json_response({"type": "answer", "sdp": got["sdp"]})
    # go2rtc answers an application/sdp offer (WHEP's form) with 201, like WHEP.
    status = 201 if request.content_type == "application/sdp" else 200
    return web.Response(status=status, text=got["sdp"], content_type="application/sdp")


async def _offer(request: web.Request, camera: str, sdp: str, dialect: str) -> Any:
    if len(sdp) > SDP_LIMIT:
        raise http_error(413, f"the offer is longer than {SDP_LIMIT // 1024} KiB")
    return await signalling._call(
        request,
        "offer",
        camera=camera,
        sdp=sdp,
        dialect=dialect,
        priority=signalling._priority(request),
        **signalling._owner(request),
    )


def _reason(exc: web.HTTPException) -> str:
    """The reason an http_error carries (its JSON body), or its text."""
    try:
        doc = json.loads(exc.text or "")
        return str(doc["error"]) if isinstance(doc, dict) and "error" in doc else exc.reason
    except (json.JSONDecodeError, TypeError):
        return (exc.text or exc.reason).strip()


class _Socket:
    """One ``/api/ws`` client: its socket, and the session it owns."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.request = request
        self.ws = ws
        self.session: str | None = None
        self.queued: list[dict[str, Any]] = []  # candidates before the answer
        self.candidates = 0  # of this offer: each is an RPC, so a flood is refused

    async def error(self, kind: str, reason: str) -> None:
        """go2rtc's ``error``: the value names the message type it answers."""
        log.info("go2rtc %s from %s: %s", kind, self.request.remote, reason)
        await self.ws.send_json({"type": "error", "value": f"{kind}: {reason}"})

    async def handle(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            msg = None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            await self.error("message", "messages are JSON {type, value}")
            return
        kind, value = msg["type"], msg.get("value")
        if kind == "webrtc/offer":
            await self.offer(value)
        elif kind == "webrtc/candidate":
            await self.candidate(value)
        else:  # go2rtc ignores what it has no handler for
            log.debug("go2rtc: ignored a %r message", kind[:40])

    async def offer(self, value: Any) -> None:
        await self.end()
        try:
            if not isinstance(value, str) or not value:
                raise http_error(400, "the value must be the offer's SDP")
            camera = _src(self.request)
            self.recheck()
            limit_signalling(self.request)
            got = await _offer(self.request, camera, value, "go2rtc")
        except web.HTTPException as e:
            await self.error("webrtc/offer", _reason(e))
            return
        self.session = got["session"]
        self.candidates = len(self.queued)  # this session's so far
        # No webrtc/candidate of ours follows: the answer carries them all.
        await self.ws.send_json({"type": "webrtc/answer", "value": got["sdp"]})
        # Those that came while the offer was answered.
        queued, self.queued = self.queued, []
        if queued:
            await self.relay(queued)

    def recheck(self) -> None:
        """The token again, for each offer: the socket outlives the upgrade's check, and a
        token revoked or expired since must open no new session (its sessions are ended
        by the webrtc service; sessions.py)."""
        if self.request.get(GRANT) is not None:
            self.request.app[AUTH].check(self.request, ACCESS)

    async def candidate(self, value: Any) -> None:
        if not isinstance(value, str):
            await self.error("webrtc/candidate", "the value must be a candidate: string")
            return
        self.candidates += 1
        if self.candidates > MAX_CANDIDATES:
            if self.candidates == MAX_CANDIDATES + 1:  # said once, not once per candidate
                await self.error("webrtc/candidate", f"at most {MAX_CANDIDATES} per offer")
            return
        entry = {"candidate": value, "sdpMid": None, "sdpMLineIndex": None}
        if self.session is None:
            self.queued.append(entry)
            return
        await self.relay([entry])

    async def relay(self, candidates: list[dict[str, Any]]) -> None:
        try:
            await signalling._call(
                self.request,
                "candidates",
                session=self.session,
                candidates=candidates,
                token=signalling._holder(self.request),
            )
        except web.HTTPException as e:
            await self.error("webrtc/candidate", _reason(e))

    async def end(self) -> None:
        """End the session this socket owns, if any (the webrtc service may have ended it
        already: its ICE failed, or the token was revoked)."""
        session, self.session = self.session, None
        if session is None:
            return
        try:
            await self.request.app[WEBRTC_RPC].call(
                "close",
                timeout=CLOSE_TIMEOUT,
                session=session,
                token=signalling._holder(self.request),
            )
        except Exception as e:  # RpcError not_found (ended already) or the service gone
            log.debug("go2rtc session %s: close: %s", session, e)


async def websocket(request: web.Request) -> web.StreamResponse:
    """GET /api/ws?src=. The token was checked before the upgrade (auth.py); an unknown
    camera is told as an ``error`` message to each offer, as go2rtc does."""
    ws = web.WebSocketResponse(max_msg_size=JSON_LIMIT, heartbeat=30.0)
    if not ws.can_prepare(request).ok:
        # What a proxy that drops Upgrade (the stock nginx /webcam/ location) delivers.
        raise http_error(
            426,
            "this is go2rtc's WebSocket API: it needs a WebSocket upgrade; without one, "
            "POST the offer to api/webrtc?src=CAMERA",
        )
    await ws.prepare(request)
    client = _Socket(request, ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await client.handle(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await client.error("message", "messages are JSON text")
    except ConnectionError:  # gone while we answered
        pass
    finally:
        if client.session is not None:
            # In a task of its own, kept: it runs on when this handler is cancelled (the
            # front door stopping).
            task = asyncio.ensure_future(client.end())
            request.app[STREAMS].keep(task)
            await asyncio.shield(task)
    return ws
