"""The printer's relay of viewer signalling, against a test server playing the proxy's side
of docs/mirage-protocol.md (the real proxy cannot route viewers yet): hello → welcome, then
offers made by a real aiortc peer, whose answers must connect and carry frames."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import aiohttp
import pytest
import zmq.asyncio
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tests.integration.conftest import Stack, free_port
from tests.integration.rtc_client import recvonly_offer
from titanium.common.endpoints import Endpoints
from titanium.common.rpc import RpcClient

DEVICE = {"id": "dev_relaytest", "secret": "relay-secret"}


class ProxySide:
    """A WebSocket server on 127.0.0.1 in a thread of its own, taking one printer."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.hello: Any = None
        self.connected = threading.Event()
        self.ws: web.WebSocketResponse | None = None
        self.inbox: asyncio.Queue[Any] | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        assert started.wait(10)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/device", self._device)
        self._runner = web.AppRunner(app)
        self.loop.run_until_complete(self._runner.setup())
        self.loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self.inbox = asyncio.Queue()
        started.set()
        self.loop.run_forever()

    async def _device(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.hello = json.loads((await ws.receive(timeout=10)).data)
        await ws.send_json({"type": "welcome"})
        self.ws = ws
        self.connected.set()
        assert self.inbox is not None
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self.inbox.put(json.loads(msg.data))
        return ws

    async def send(self, doc: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(doc)

    async def reply(self, session: str, timeout: float = 15) -> dict[str, Any]:
        """The printer's next message about ``session`` (others are kept for later)."""
        assert self.inbox is not None
        others: list[Any] = []
        try:
            while True:
                doc = await asyncio.wait_for(self.inbox.get(), timeout)
                if doc.get("session") == session:
                    return dict(doc)
                others.append(doc)
        finally:
            for doc in others:
                self.inbox.put_nowait(doc)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self._runner.cleanup(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def proxy_side() -> Iterator[ProxySide]:
    side = ProxySide()
    yield side
    side.close()


def offer(session: str, sdp: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "offer",
        "session": session,
        "camera": "cam0",
        "sdp": sdp,
        "token": f"jti-{session}",
        "address": "203.0.113.7",
        "ice_servers": [],
        **extra,
    }


def webrtc_sessions(stack: Stack) -> list[dict[str, Any]]:
    sessions: list[dict[str, Any]] = stack.status().get("webrtc", {}).get("sessions", [])
    return sessions


def test_offers_are_answered_and_play_closes_and_errors_relayed(
    proxy_side: ProxySide, make_stack: Callable[..., Stack]
) -> None:
    """Pins the relay of docs/mirage-protocol.md: the hello carries the device and its
    cameras; an offer is answered with an SDP answer that, applied to the viewer's peer,
    connects and plays frames, the session owned by mirage:JTI and the viewer's address;
    `close` ends it; a bad ice_servers shape is `bad_args` and an unknown camera
    `not_found`; a session the printer ends by itself is reported `closed`. Before: no
    service dialled, and `ice_servers` was not checked (a bad shape was answered)."""
    stack = make_stack(
        mirage={
            "titanium_streams": {"enabled": True},
            "proxy": f"ws://127.0.0.1:{proxy_side.port}",
            "device": DEVICE,
        }
    )
    assert proxy_side.connected.wait(15), stack.log()
    assert proxy_side.hello == {
        "type": "hello",
        "device": DEVICE["id"],
        "secret": DEVICE["secret"],
        "cameras": ["cam0"],
        "version": 1,
    }

    async def scenario() -> None:
        probe = await recvonly_offer()
        sdp = probe.localDescription.sdp
        await probe.close()
        bad = offer("s-bad", sdp, ice_servers=[{"urls": "http://turn.example"}])
        await proxy_side.send(bad)
        got = await proxy_side.reply("s-bad")
        assert (got["type"], got["code"]) == ("error", "bad_args"), got
        await proxy_side.send(offer("s-cam", sdp, camera="nope"))
        got = await proxy_side.reply("s-cam")
        assert (got["type"], got["code"]) == ("error", "not_found"), got

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        pc.on("track", lambda t: tracks.put_nowait(t))
        await pc.setLocalDescription(await pc.createOffer())
        await proxy_side.send(offer("s1", pc.localDescription.sdp))
        answer = await proxy_side.reply("s1")
        assert answer["type"] == "answer" and "m=video" in answer["sdp"], answer
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        track = await asyncio.wait_for(tracks.get(), 10)
        frames = 0
        while frames < 10:
            await asyncio.wait_for(track.recv(), 10)
            frames += 1
        (session,) = await asyncio.to_thread(webrtc_sessions, stack)
        assert (session["dialect"], session["token"], session["address"]) == (
            "mirage",
            "mirage:jti-s1",
            "203.0.113.7",
        )
        await proxy_side.send({"type": "close", "session": "s1"})
        for _ in range(50):
            if not await asyncio.to_thread(webrtc_sessions, stack):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the webrtc session outlived the proxy's close")
        await pc.close()

        # Ended by the printer (here: its token revoked over the webrtc service's RPC).
        pc2 = await recvonly_offer()
        await proxy_side.send(offer("s2", pc2.localDescription.sdp))
        assert (await proxy_side.reply("s2"))["type"] == "answer"
        ctx = zmq.asyncio.Context()
        rpc = RpcClient(ctx, Endpoints(stack.runtime_dir).webrtc_rpc())
        try:
            assert await rpc.call("sessions.close_token", id="mirage:jti-s2") == {"closed": 1}
        finally:
            rpc.close()
            ctx.term()
        closed = await proxy_side.reply("s2", timeout=5)
        assert closed["type"] == "closed" and closed["reason"], closed
        await pc2.close()

    proxy_side.run(scenario())
