"""go2rtc's API on the front door (services/mjpeg/go2rtc.py), spoken by a real aiohttp
client and a real aiortc peer against a real stack: the ``/api/ws`` WebSocket exchange and
its errors, ``POST /api/webrtc`` in both forms, and the snapshot, stream and listing."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tests.integration.conftest import Stack
from tests.integration.rtc_client import Received, recvonly_offer, track_frames
from titanium.common.tokens import Tokens
from titanium.services.mjpeg.signalling import MAX_CANDIDATES

ANSWER_TIMEOUT = 20.0


def _split_candidates(sdp: str) -> tuple[str, list[str]]:
    """The offer without its ``a=candidate:`` lines, and those lines as bare
    ``candidate:`` strings: what a trickling browser sends as ``webrtc/candidate``."""
    lines = sdp.split("\r\n")
    found = [line[2:] for line in lines if line.startswith("a=candidate:")]
    kept = [line for line in lines if not line.startswith(("a=candidate:", "a=end-of-candidates"))]
    return "\r\n".join(kept), found


async def _next(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=ANSWER_TIMEOUT)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    doc: dict[str, Any] = json.loads(msg.data)
    return doc


def _viewer() -> tuple[RTCPeerConnection, asyncio.Queue[MediaStreamTrack]]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no public STUN server
    pc.addTransceiver("video", direction="recvonly")
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    pc.on("track", lambda t: tracks.put_nowait(t))
    return pc, tracks


def _go2rtc_sessions(stack: Stack) -> list[dict[str, Any]]:
    return [s for s in stack.status()["webrtc"]["sessions"] if s["dialect"] == "go2rtc"]


def test_ws_errors_keep_the_socket_and_queued_candidates_reach_the_session(
    stack: Stack,
) -> None:
    """Pins: there was no /api/ws (404), so Mainsail's and Fluidd's webrtc-go2rtc could not
    play. A garbage offer and an unknown src are ``error`` messages naming
    ``webrtc/offer`` and the socket stays usable; candidates sent before the answer are
    held and relayed once the session exists (a bad one among them comes back as a
    ``webrtc/candidate`` error after the answer, so it did reach the webrtc service); the
    peer then decodes frames; more than 64 candidates (an RPC each) are refused with one
    error; closing the socket ends the session."""

    async def run() -> tuple[Received, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(stack.url("/api/ws?src=nosuch")) as ws:
                await ws.send_json({"type": "webrtc/offer", "value": "v=0 garbage"})
                seen.append(await _next(ws))
            # Mainsail's URL: media=video+audio, its '+' as sent and as %2B.
            url = stack.url("/api/ws?src=cam0&media=video%2Baudio")
            async with http.ws_connect(url) as ws:
                await ws.send_json({"type": "webrtc/offer", "value": "v=0\r\nnot an offer\r\n"})
                seen.append(await _next(ws))
                pc, tracks = _viewer()
                await pc.setLocalDescription(await pc.createOffer())
                offer, candidates = _split_candidates(pc.localDescription.sdp)
                assert candidates, "aiortc gathered no candidate"
                await ws.send_json({"type": "webrtc/offer", "value": offer})
                for c in candidates:  # before the answer can have come
                    await ws.send_json({"type": "webrtc/candidate", "value": c})
                await ws.send_json({"type": "webrtc/candidate", "value": "candidate:junk"})
                answer = await _next(ws)
                seen.append({"type": answer["type"]})
                assert answer["type"] == "webrtc/answer", answer
                await pc.setRemoteDescription(RTCSessionDescription(answer["value"], "answer"))
                seen.append(await _next(ws))  # the junk candidate's error
                got = await track_frames(tracks, 3.0)
                seen.append({"sessions": len(_go2rtc_sessions(stack))})
                # Each candidate is an RPC to the webrtc service: a flood is cut off, once.
                for port in range(20000, 20000 + MAX_CANDIDATES):
                    value = f"candidate:9 1 udp 2130706431 127.0.0.1 {port} typ host"
                    await ws.send_json({"type": "webrtc/candidate", "value": value})
                seen.append(await _next(ws))
                await pc.close()
        return got, seen

    got, seen = asyncio.run(run())
    assert seen[0]["type"] == "error", seen
    assert re.match(r"webrtc/offer: no camera 'nosuch'", seen[0]["value"]), seen
    assert seen[1]["type"] == "error" and seen[1]["value"].startswith("webrtc/offer: "), seen
    assert seen[2] == {"type": "webrtc/answer"}, seen
    assert seen[3]["type"] == "error", seen
    assert seen[3]["value"].startswith("webrtc/candidate: "), seen
    assert seen[4] == {"sessions": 1}, seen
    assert seen[5] == {"type": "error", "value": "webrtc/candidate: at most 64 per offer"}, seen
    assert got.frames >= 20 and (got.width, got.height) == (640, 480), got
    stack.wait_for(lambda st: not _go2rtc_sessions_in(st), 5, "the socket's session ended")
    assert stack.get("/snapshot")[0] == 200  # the front door serves on


def _go2rtc_sessions_in(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in status["webrtc"]["sessions"] if s["dialect"] == "go2rtc"]


def test_post_api_webrtc_json_and_raw_sdp_play(stack: Stack) -> None:
    """Pins: there was no POST /api/webrtc (go2rtc's non-trickle exchange, the one that
    passes the stock nginx location). JSON {type: offer, sdp} gets JSON {type: answer,
    sdp}; a raw SDP body gets raw SDP; both peers decode frames. An unknown src is 404."""

    async def view(form: str) -> Received:
        pc = await recvonly_offer()
        tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        pc.on("track", lambda t: tracks.put_nowait(t))
        url = stack.url("/api/webrtc?src=cam0")
        async with aiohttp.ClientSession() as http:
            if form == "json":
                body = {"type": "offer", "sdp": pc.localDescription.sdp}
                async with http.post(url, json=body) as r:
                    assert r.status == 200, await r.text()
                    doc = await r.json()
                assert doc["type"] == "answer", doc
                sdp = doc["sdp"]
            else:
                async with http.post(url, data=pc.localDescription.sdp) as r:
                    assert r.status == 200, await r.text()
                    assert r.content_type == "application/sdp"
                    sdp = await r.text()
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        got = await track_frames(tracks, 3.0)
        await pc.close()
        return got

    for form in ("json", "raw"):
        got = asyncio.run(view(form))
        assert got.frames >= 20 and (got.width, got.height) == (640, 480), (form, got)
    code, _, body = _post(stack, "/api/webrtc?src=nosuch", b"v=0\r\n")
    assert code == 404 and b"no camera 'nosuch'" in body, (code, body)


def _post(stack: Stack, path: str, body: bytes) -> tuple[int, bytes, bytes]:
    async def run() -> tuple[int, bytes, bytes]:
        async with aiohttp.ClientSession() as http, http.post(stack.url(path), data=body) as r:
            return r.status, r.content_type.encode(), await r.read()

    return asyncio.run(run())


def test_frame_jpeg_stream_mjpeg_and_streams(stack: Stack) -> None:
    """Pins: /api/frame.jpeg, /api/stream.mjpeg and /api/streams were 404, so go2rtc
    snapshot and MJPEG URLs showed nothing. Unknown src: 404 with the reason; /api/ws
    without an upgrade: 426 saying what to use instead."""
    code, headers, body = stack.get("/api/frame.jpeg?src=cam0")
    assert code == 200 and body[:2] == b"\xff\xd8", (code, body[:40])
    assert headers["Content-Type"] == "image/jpeg"
    code, _, body = stack.get("/api/streams")
    assert code == 200 and list(json.loads(body)) == ["cam0"], body
    assert "producers" in json.loads(body)["cam0"], body
    code, _, body = stack.get("/api/frame.jpeg?src=nosuch")
    assert code == 404 and b"no camera 'nosuch'" in body, (code, body)
    code, _, body = stack.get("/api/stream.mjpeg?src=nosuch")
    assert code == 404 and b"no camera 'nosuch'" in body, (code, body)
    # What a proxy that drops Upgrade (the stock nginx /webcam/ location) gets: a reason.
    code, _, body = stack.get("/api/ws?src=cam0")
    assert code == 426 and b"POST the offer to api/webrtc" in body, (code, body)

    async def first_jpeg() -> tuple[int, str, bytes]:
        url = stack.url("/api/stream.mjpeg?src=cam0")
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            data = b""
            while b"\xff\xd9" not in data and len(data) < 4_000_000:
                data += await asyncio.wait_for(r.content.readany(), 10)
            return r.status, r.headers["Content-Type"], data

    code, kind, data = asyncio.run(first_jpeg())
    assert code == 200 and kind.startswith("multipart/x-mixed-replace"), (code, kind)
    assert b"\xff\xd8" in data and b"\xff\xd9" in data


def test_src_is_the_camera_a_query_token_must_cover(make_stack: Any) -> None:
    """Pins: with http.auth 'token', go2rtc's routes checked the token against the first
    camera whatever ``?src=`` named (or not at all), so a token for cam1 could watch cam2.
    A query token (what Mainsail and Fluidd keep in the URL) opens the WebSocket, also
    under /t/TOKEN/; /api/streams lists only the token's cameras. An open socket whose
    token is revoked gets no new session (the check was made only at the upgrade)."""
    cams = [
        {"id": "cam1", "device": "testpattern", "resolution": "320x240", "fps": 10},
        {"id": "cam2", "device": "testpattern", "resolution": "320x240", "fps": 10},
    ]
    stack = make_stack(cams, http={"auth": "token"})
    tokens = Tokens(stack.state_dir)
    token, grant = tokens.create("cam1 only", ["cam1"], "view", ttl=600)

    async def run() -> list[Any]:
        out: list[Any] = []
        async with aiohttp.ClientSession() as http:
            for path in (
                f"/api/frame.jpeg?src=cam1&token={token}",
                f"/api/frame.jpeg?src=cam2&token={token}",
                f"/api/stream.mjpeg?src=cam2&token={token}",
                "/api/frame.jpeg?src=cam1",
                f"/api/streams?token={token}",
            ):
                async with http.get(stack.url(path)) as r:
                    out.append((r.status, await r.read() if r.status != 200 else b""))
                    if path.startswith("/api/streams"):
                        out[-1] = (r.status, list(json.loads(await r.read())))
            for path in (
                f"/api/ws?src=cam2&token={token}",
                f"/api/ws?src=cam1&media=video+audio&token={token}",
                f"/t/{token}/api/ws?src=cam1&media=video",
            ):
                try:
                    async with http.ws_connect(stack.url(path)) as ws:
                        await ws.send_json({"type": "webrtc/offer", "value": "v=0"})
                        out.append(("open", (await _next(ws))["value"]))
                except aiohttp.WSServerHandshakeError as e:
                    out.append(("refused", e.status))
            # A socket outlives its token: revoked, it opens no new session.
            async with http.ws_connect(stack.url(f"/api/ws?src=cam1&token={token}")) as ws:
                tokens.revoke(grant.id)
                await asyncio.sleep(1.5)  # the front door reads revocations every 0.5 s
                await ws.send_json({"type": "webrtc/offer", "value": "v=0"})
                out.append(("revoked", (await _next(ws))["value"]))
        return out

    got = asyncio.run(run())
    assert got[0] == (200, b""), got
    assert got[1][0] == 403 and b"does not cover camera 'cam2'" in got[1][1], got
    assert got[2][0] == 403, got
    assert got[3][0] == 401, got
    assert got[4] == (200, ["cam1"]), got
    assert got[5] == ("refused", 403), got
    assert got[6][0] == "open" and got[6][1].startswith("webrtc/offer: "), got
    assert got[7][0] == "open" and got[7][1].startswith("webrtc/offer: "), got
    assert got[8] == ("revoked", "webrtc/offer: the token was revoked"), got
