"""WebRTC signalling through the front door, byte for byte as PROTOCOLS.md says, with the
webrtc service behind it: WHEP, camera-streamer's JSON, OctoPrint's offer, and 4xx answers
with a reason for everything malformed while other viewers keep being served."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.integration.conftest import Stack

SDPFRAG = (
    "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\n"
    "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n"
    "a=end-of-candidates\r\n"
)


async def _offer(audio: bool = True) -> tuple[RTCPeerConnection, str]:
    """A browser-like offer: Mainsail's sendrecv video + audio."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="sendrecv")
    if audio:
        pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_whep_exchange(stack: Stack) -> None:
    async def main() -> None:
        pc, offer = await _offer()
        async with aiohttp.ClientSession() as http:
            url = stack.url("/whep")
            async with http.options(url) as r:
                assert r.status == 204
                assert r.headers["Access-Control-Allow-Origin"] == "*"
                assert r.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
            async with http.post(url, data=offer, headers={"Content-Type": "application/sdp"}) as r:
                assert r.status == 201, await r.text()
                assert r.headers["Content-Type"] == "application/sdp"
                location = r.headers["Location"]
                assert not location.startswith("/"), "relative, to survive nginx prefixes"
                assert r.headers["ETag"]
                exposed = r.headers["Access-Control-Expose-Headers"]
                for name in ("ETag", "ID", "Accept-Patch", "Link", "Location"):
                    assert name in exposed
                answer = await r.text()
            # Video only: our H.264 video is sent, Mainsail's audio is declined.
            video, audio = answer.split("m=video")[1].split("m=audio")
            assert "a=sendonly" in video and "H264" in video and "VP8" not in video
            assert "a=inactive" in audio
            assert "a=candidate:" in answer and "127.0.0.1" in answer
            session = urllib.parse.urljoin(url, location)
            patch = {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*"}
            async with http.options(session) as r:  # the session resource takes the rest
                assert r.status == 204
                assert r.headers["Access-Control-Allow-Methods"] == "PATCH, DELETE, OPTIONS"
                assert "If-Match" in r.headers["Access-Control-Allow-Headers"]
            async with http.patch(session, data=SDPFRAG, headers=patch) as r:
                assert r.status == 204, await r.text()
            async with http.delete(session) as r:
                assert r.status == 200
            async with http.patch(session, data=SDPFRAG, headers=patch) as r:
                assert r.status == 404  # the client restarts on this
            async with http.patch(stack.url("/whep/nosuch"), data=SDPFRAG, headers=patch) as r:
                assert r.status == 404 and "no session" in await r.text()
        await pc.close()

    run(main())


def test_whep_options_lists_configured_ice_servers(make_stack: Callable[..., Stack]) -> None:
    mirage = {
        "titanium_streams": {
            "stun_servers": ["stun:stun.example.org:3478"],
            "turn_servers": [{"urls": "turn:turn.example.org", "username": "u", "credential": "p"}],
        }
    }
    stack = make_stack(mirage=mirage)

    async def main() -> None:
        async with aiohttp.ClientSession() as http, http.options(stack.url("/whep")) as r:
            assert r.status == 204
            links = r.headers.getall("Link")
        assert '<stun:stun.example.org:3478>; rel="ice-server"' in links
        assert (
            '<turn:turn.example.org>; rel="ice-server"; username="u"; credential="p"; '
            'credential-type="password"' in links
        )

    run(main())


def test_camera_streamer_exchange_without_content_type(stack: Stack) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            url = stack.url("/webrtc")
            # Fluidd's application/json triggers a preflight.
            async with http.options(url) as r:
                assert r.status == 204
                assert r.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
                assert r.headers["Access-Control-Allow-Headers"] == "Content-Type"
            request = json.dumps({"type": "request", "iceServers": [], "keepAlive": True})
            async with http.post(url, data=request, skip_auto_headers={"Content-Type"}) as r:
                assert r.status == 200, await r.text()
                assert r.headers["Access-Control-Allow-Origin"] == "*"
                offer = await r.json(content_type=None)
            assert offer["type"] == "offer" and offer["id"] and offer["keepAlive"] is True
            assert offer["iceServers"] == []
            assert "a=candidate:" in offer["sdp"] and "H264" in offer["sdp"]
            assert "webrtc-datachannel" in offer["sdp"]  # the keepalive channel
            # Candidates may come before the answer: they are queued, not refused.
            early = {
                "type": "remote_candidate",
                "id": offer["id"],
                "candidates": [
                    {
                        "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50001 typ host",
                        "sdpMid": "0",
                        "sdpMLineIndex": 0,
                    },
                    {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0},
                ],
            }
            async with http.post(url, data=json.dumps(early)) as r:
                assert r.status == 200 and await r.json() == {}
            bad_answer = {"type": "answer", "id": "nosuch", "sdp": "v=0"}
            async with http.post(url, data=json.dumps(bad_answer)) as r:
                assert r.status == 404 and "no session" in (await r.json())["error"]

    run(main())


def test_octoprint_offer_gets_an_answer(stack: Stack) -> None:
    async def main() -> None:
        pc, offer = await _offer()
        async with aiohttp.ClientSession() as http:
            body = json.dumps({"type": "offer", "sdp": offer})
            async with http.post(stack.url("/webrtc"), data=body) as r:
                assert r.status == 200, await r.text()
                reply = await r.json()
        assert reply["type"] == "answer" and "m=video" in reply["sdp"]
        await pc.close()

    run(main())


def test_malformed_signalling_gets_4xx_with_a_reason(stack: Stack) -> None:
    cases: list[tuple[str, str, dict[str, str], int, str]] = [
        ("/webrtc", "{not json", {}, 400, "not JSON"),
        ("/webrtc", "[1, 2]", {}, 400, "JSON object"),
        ("/webrtc", '{"type": "dance"}', {}, 400, "unknown type"),
        ("/webrtc", '{"type": "answer", "id": "x"}', {}, 400, "'sdp'"),
        ("/webrtc", '{"type": "remote_candidate", "id": "x", "candidates": 3}', {}, 400, "list"),
        ("/whep", "v=0", {"Content-Type": "text/plain"}, 415, "application/sdp"),
        (
            "/whep",
            "v=0\r\nm=audio 9 RTP 0\r\n",
            {"Content-Type": "application/sdp"},
            400,
            "no video",
        ),
        (
            "/whep?camera=nope",
            "v=0\r\nm=video 9 x 0\r\n",
            {"Content-Type": "application/sdp"},
            404,
            "no camera",
        ),
        (
            "/whep",
            "v=0\r\nm=video 9 x 0\r\n",
            {"Content-Type": "application/sdp"},
            400,
            "offer: m=video transport",
        ),
    ]

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            for path, body, headers, status, reason in cases:
                async with http.post(stack.url(path), data=body, headers=headers) as r:
                    text = await r.text()
                    assert r.status == status, (path, body, r.status, text)
                    assert reason in text, (path, text)
                    assert r.headers["Access-Control-Allow-Origin"] == "*"

    run(main())
    code, _, _ = stack.get("/snapshot")
    assert code == 200
    assert stack.status()["services"]["webrtc"]["state"] == "running"


def test_webrtc_max_viewers_is_refused_with_a_reason(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(streaming={"max_viewers": 1})

    async def main() -> None:
        first, offer1 = await _offer(audio=False)
        second, offer2 = await _offer(audio=False)
        headers = {"Content-Type": "application/sdp"}
        async with aiohttp.ClientSession() as http:
            async with http.post(stack.url("/whep"), data=offer1, headers=headers) as r:
                assert r.status == 201
            async with http.post(stack.url("/whep"), data=offer2, headers=headers) as r:
                assert r.status == 503 and "max_viewers" in await r.text()
        await first.close()
        await second.close()

    run(main())
