"""One proxy connection's viewer sessions, relayed to the webrtc service (docs/mirage-protocol.md):
``offer`` → RPC ``offer`` → ``answer`` or ``error``; ``candidates`` and ``close`` to the
webrtc session the offer opened; ``closed`` when that session ends by itself.

A relay lives as long as its connection: after a loss the proxy forgets the device's sessions,
so the map goes with it, while the peer connections stay up until they fail by themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from titanium.common.rpc import RpcClient, RpcError

log = logging.getLogger("titanium.mirage.relay")

Send = Callable[[dict[str, Any]], Awaitable[None]]
# The proxy gives the printer 15 s to answer: an answer later than this reaches nobody.
OFFER_TIMEOUT = 12.0
CALL_TIMEOUT = 5.0
# How often the webrtc sessions are checked for ones that ended by themselves (`closed`).
WATCH_PERIOD = 1.0
UNAVAILABLE = ("timeout", "disconnected")  # the webrtc service did not answer


@dataclass
class Viewer:
    """A proxy session: the webrtc session once the offer is answered, the token it is
    owned by, and what arrived before the answer."""

    token: str
    webrtc: str | None = None
    early: list[Any] = field(default_factory=list)  # candidates
    closing: bool = False


class Relay:
    def __init__(self, rpc: RpcClient, send: Send) -> None:
        self._rpc = rpc
        self._send_ws = send
        self.viewers: dict[str, Viewer] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, doc: Any) -> None:
        """One message from the proxy; what is malformed is logged and dropped."""
        kind = doc.get("type") if isinstance(doc, dict) else None
        sid = doc.get("session") if isinstance(doc, dict) else None
        if kind not in ("offer", "candidates", "close") or not isinstance(sid, str):
            log.warning("dropped a message from the proxy: %.100r", doc)
            return
        if kind == "offer":
            self._spawn(self._offer(sid, doc))
        elif kind == "candidates":
            self._spawn(self._candidates(sid, doc.get("candidates")))
        else:
            self._spawn(self._close(sid))

    def _spawn(self, coro: Awaitable[None]) -> None:
        # Each as its own task: an offer waits for ICE gathering, and must not hold up the
        # candidates and closes of the others.
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            e = task.exception()
            log.error("relaying failed: %s: %s", type(e).__name__, e)

    async def _send(self, doc: dict[str, Any]) -> None:
        try:
            await self._send_ws(doc)
        except ConnectionError:  # the connection went while we answered: the proxy forgot
            log.info("proxy session %s: connection lost before %s", doc["session"], doc["type"])

    async def _offer(self, sid: str, doc: dict[str, Any]) -> None:
        camera, sdp, jti = doc.get("camera"), doc.get("sdp"), doc.get("token")
        if not all(isinstance(v, str) for v in (camera, sdp, jti)):
            await self._error(sid, "bad_args", "an offer needs camera, sdp and token strings")
            return
        if sid in self.viewers:
            await self._error(sid, "bad_args", f"session {sid!r} already has an offer")
            return
        viewer = Viewer(f"mirage:{jti}")
        self.viewers[sid] = viewer
        args: dict[str, Any] = {
            "camera": camera,
            "sdp": sdp,
            "dialect": "mirage",
            "token": viewer.token,
            "ice_servers": doc.get("ice_servers") or [],
        }
        if isinstance(doc.get("address"), str):
            args["address"] = doc["address"]
        try:
            result = await self._rpc.call("offer", timeout=OFFER_TIMEOUT, **args)
        except RpcError as e:
            self.viewers.pop(sid, None)
            code = "unavailable" if e.code in UNAVAILABLE else e.code
            await self._error(sid, code, e.message)
            return
        viewer.webrtc = str(result["session"])
        log.info("proxy session %s: webrtc session %s of %s", sid, viewer.webrtc, camera)
        if viewer.closing:  # the viewer left while we were answering
            await self._close(sid)
            return
        await self._send({"type": "answer", "session": sid, "sdp": result["sdp"]})
        if viewer.early:
            early, viewer.early = viewer.early, []
            await self._candidates(sid, early)

    async def _error(self, sid: str, code: str, reason: str) -> None:
        log.info("proxy session %s: %s: %s", sid, code, reason)
        await self._send({"type": "error", "session": sid, "code": code, "reason": reason})

    async def _candidates(self, sid: str, candidates: Any) -> None:
        viewer = self.viewers.get(sid)
        if viewer is None:
            return  # ended, or never ours: nothing to tell the proxy
        if not isinstance(candidates, list):
            log.warning("proxy session %s: candidates is not a list", sid)
            return
        if viewer.webrtc is None:
            viewer.early.extend(candidates)
            return
        try:
            await self._rpc.call(
                "candidates",
                timeout=CALL_TIMEOUT,
                session=viewer.webrtc,
                token=viewer.token,
                candidates=candidates,
            )
        except RpcError as e:
            log.info("proxy session %s: candidates refused: %s", sid, e)

    async def _close(self, sid: str) -> None:
        viewer = self.viewers.get(sid)
        if viewer is None:
            return
        if viewer.webrtc is None:
            viewer.closing = True
            return
        del self.viewers[sid]
        try:
            await self._rpc.call(
                "close", timeout=CALL_TIMEOUT, session=viewer.webrtc, token=viewer.token
            )
        except RpcError as e:
            log.info("proxy session %s: close: %s", sid, e)

    async def watch(self) -> None:
        """Tell the proxy ``closed`` for each session the webrtc service ended by itself
        (the peer failed or never connected, the governor shed it)."""
        while True:
            await asyncio.sleep(WATCH_PERIOD)
            # Only sessions answered before asking: a newer one may be missing from the reply.
            known = {sid: v.webrtc for sid, v in self.viewers.items() if v.webrtc is not None}
            if not known:
                continue
            try:
                status = await self._rpc.call("status", timeout=CALL_TIMEOUT)
            except RpcError:
                continue  # restarting: its sessions are gone, seen on the next round
            alive = {s.get("id") for s in status.get("sessions", []) if isinstance(s, dict)}
            for sid, webrtc in known.items():
                if webrtc not in alive and sid in self.viewers:
                    del self.viewers[sid]
                    log.info("proxy session %s: ended by the printer", sid)
                    await self._send(
                        {"type": "closed", "session": sid, "reason": "the peer connection ended"}
                    )

    async def close_all(self) -> None:
        """Close the peer connection of every answered session (the device was removed).
        An offer still being answered goes with the link: its viewer got a 503, so that
        peer never connects and the webrtc service ends it by itself."""
        await asyncio.gather(*(self._close(sid) for sid in list(self.viewers)))

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
