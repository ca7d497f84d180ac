"""Where viewers' signalling meets the printers': the connected devices, the viewer sessions
the proxy opened on them and the offers waiting for an answer (docs/mirage-protocol.md).

A session belongs to the device connection it was opened on and to the token that opened it:
when the connection goes, its sessions are forgotten and waiting offers fail with 503 (the
printer keeps the peer connections that still flow, as the protocol says).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from titanium.services.webrtc.checks import check_sdp

log = logging.getLogger("mirage.hub")

MAX_MSG = 64 * 1024  # each WebSocket message, either way


class SignalError(Exception):
    """An offer that ends without an answer: ``status`` and ``reason`` go to the viewer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(eq=False)
class Link:
    """One device's WebSocket, as long as it lasts."""

    device: str
    ws: web.WebSocketResponse
    cameras: tuple[str, ...]
    pending: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    async def send(self, doc: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(doc))


@dataclass(frozen=True)
class Session:
    id: str
    link: Link
    camera: str
    token: str  # the jti of the token that opened it
    expires: float = math.inf  # the token's expiry (Unix time): the session ends with it


class Hub:
    def __init__(self, signal_timeout: float) -> None:
        self.signal_timeout = signal_timeout
        self.online: dict[str, Link] = {}
        self.sessions: dict[str, Session] = {}

    # -- viewers ------------------------------------------------------------------------

    async def offer(
        self,
        link: Link,
        sid: str,
        camera: str,
        sdp: str,
        token: str,
        address: str,
        ice: list[dict[str, Any]],
        expires: float = math.inf,
    ) -> tuple[Session, str]:
        """Forward a viewer's offer as session ``sid``; the new session and the printer's
        answer, or SignalError."""
        message = json.dumps(
            {
                "type": "offer",
                "session": sid,
                "camera": camera,
                "sdp": sdp,
                "token": token,
                "address": address,
                "ice_servers": ice,
            }
        )
        # JSON escapes each CRLF into four characters: an offer under the body limit can still
        # be over the device's message limit, which would cost the device its connection.
        if len(message.encode()) > MAX_MSG:
            raise SignalError(413, f"the offer is too large to forward (over {MAX_MSG} bytes)")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        link.pending[sid] = future
        try:
            await link.ws.send_str(message)
            reply = await asyncio.wait_for(future, self.signal_timeout)
        except TimeoutError:
            await link.send({"type": "close", "session": sid})
            raise SignalError(
                504, f"the printer did not answer within {self.signal_timeout:g} s"
            ) from None
        except ConnectionError:
            raise SignalError(503, "the device is not connected") from None
        finally:
            link.pending.pop(sid, None)
        if reply.get("type") == "error":
            code, reason = str(reply.get("code", "")), str(reply.get("reason", ""))
            raise SignalError(502, f"the printer refused the offer: {code}: {reason}"[:300])
        answer = reply.get("sdp")
        try:
            if not isinstance(answer, str):
                raise ValueError("answer: no sdp")
            check_sdp(answer, "answer")
        except ValueError as e:
            await link.send({"type": "close", "session": sid})
            raise SignalError(502, f"the printer's answer is malformed: {e}") from None
        if self.online.get(link.device) is not link:
            raise SignalError(503, "the device is not connected")
        session = Session(sid, link, camera, token, expires)
        self.sessions[sid] = session
        return session, answer

    async def close(self, session: Session) -> None:
        """End a session: forgotten here, and the printer told to close its peer."""
        if self.sessions.pop(session.id, None) is not None:
            await session.link.send({"type": "close", "session": session.id})

    async def revoked(self, token_ids: set[str]) -> None:
        for session in [s for s in self.sessions.values() if s.token in token_ids]:
            log.info("token %s revoked: closing session %s", session.token, session.id)
            await self.close(session)

    async def expired(self, now: float) -> None:
        for session in [s for s in self.sessions.values() if s.expires <= now]:
            log.info("token %s expired: closing session %s", session.token, session.id)
            await self.close(session)

    def count(self, token: str, device: str) -> tuple[int, int]:
        """Sessions open with this token and on this device."""
        sessions = self.sessions.values()
        return (
            sum(1 for s in sessions if s.token == token),
            sum(1 for s in sessions if s.link.device == device),
        )

    # -- devices ------------------------------------------------------------------------

    async def receive(self, link: Link, text: str) -> None:
        """One message from the device: an answer, an error or a closed session."""
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("session"), str):
            log.info("device %s sent a message without a session: ignored", link.device)
            return
        sid, kind = doc["session"], doc.get("type")
        if kind in ("answer", "error"):
            future = link.pending.get(sid)
            if future is not None and not future.done():
                future.set_result(doc)
            elif kind == "answer":
                # The viewer gave up (504, or hung up): the printer must not keep the peer.
                await link.send({"type": "close", "session": sid})
        elif kind == "closed":
            session = self.sessions.get(sid)
            # Only the device a session runs on may end it.
            if session is not None and session.link is link:
                del self.sessions[sid]
                log.info("device %s closed session %s: %s", link.device, sid, doc.get("reason"))
        else:
            log.info("device %s sent an unknown message type %r: ignored", link.device, kind)

    def drop(self, link: Link) -> None:
        """The device's connection is gone: forget its sessions, fail its waiting offers."""
        if self.online.get(link.device) is link:
            del self.online[link.device]
        for sid in [s.id for s in self.sessions.values() if s.link is link]:
            del self.sessions[sid]
        for future in link.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("device gone"))
        link.pending.clear()

    def describe(self) -> dict[str, Any]:
        online = sorted(self.online)
        return {
            "ok": True,
            "devices_online": len(online),
            "devices": online,
            "cameras": {d: list(self.online[d].cameras) for d in online},
            "sessions": len(self.sessions),
        }
