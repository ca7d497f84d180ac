"""Bad signalling input, each exactly as seen on main, against a real stack: every one gets
a 4xx whose reason says what is wrong in the client's terms (no class name, no Python
message, no 500), the log gets no tracebacks, and the session it was aimed at survives."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time
import urllib.parse
from typing import Any

import aiohttp
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.integration.conftest import Stack, free_port

GARBAGE_FRAG = (
    "a=ice-ufrag:x\r\na=ice-pwd:y\r\nm=video 9 UDP 0\r\na=mid:0\r\na=candidate:garbage\r\n"
)
PREFIX = "/webcam"
PYTHON_TEXT = ("Error", "invalid literal", "Traceback", "unpack", "NoneType")


async def _offer() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


def _refused(status: int, text: str, expect: int, reason: str) -> None:
    assert status == expect and reason in text, (status, text)
    for python in PYTHON_TEXT:
        assert python not in text, text


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 90))


def test_malformed_sdp_and_candidates_get_a_reason_and_spoil_nothing(stack: Stack) -> None:
    """Pins: a garbage candidate answered 500 "AssertionError: " (PATCH and
    remote_candidate); offers with a=rtpmap:x, a non-numeric m=video port or NUL
    separators answered Python's "invalid literal for int()"; a candidate with neither
    sdpMid nor sdpMLineIndex was accepted and then failed the viewer's valid answer with
    500; JSON nested 5,000 deep answered a bare 500; and each was logged with a traceback."""
    webrtc = stack.url("/webrtc")
    sdp_headers = {"Content-Type": "application/sdp"}

    async def post_json(http: aiohttp.ClientSession, body: Any) -> tuple[int, str]:
        data = body if isinstance(body, str) else json.dumps(body)
        async with http.post(webrtc, data=data) as r:
            return r.status, await r.text()

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            # A live WHEP session takes the garbage PATCH and stays usable.
            pc, offer = await _offer()
            async with http.post(stack.url("/whep"), data=offer, headers=sdp_headers) as r:
                assert r.status == 201, await r.text()
                session = urllib.parse.urljoin(stack.url("/whep"), r.headers["Location"])
            trickle = {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*"}
            async with http.patch(session, data=GARBAGE_FRAG, headers=trickle) as r:
                _refused(r.status, await r.text(), 400, "candidate: expected")
            async with http.delete(session) as r:
                assert r.status == 200
            await pc.close()

            # Offers aiortc's parser cannot read.
            for old, new, reason in [
                (r"a=rtpmap:\d+ ", "a=rtpmap:x ", "offer: line"),
                (r"m=video \d+ ", "m=video x ", "offer: m=video port is not a number"),
                (r"\r\n", "\0", "offer: contains control characters"),
            ]:
                pc, offer = await _offer()
                bad = re.sub(old, new, offer, count=0 if new == "\0" else 1)
                assert bad != offer, old
                async with http.post(stack.url("/whep"), data=bad, headers=sdp_headers) as r:
                    _refused(r.status, await r.text(), 400, reason)
                await pc.close()

            # camera-streamer: a live session, garbage and portless candidates, then a
            # bare candidate (no sdpMid, no sdpMLineIndex) before the valid answer.
            status, text = await post_json(http, {"type": "request", "keepAlive": False})
            assert status == 200, text
            offer_doc = json.loads(text)
            sid = offer_doc["id"]
            garbage = {
                "type": "remote_candidate",
                "id": sid,
                "candidates": [{"candidate": "garbage"}],
            }
            _refused(*(await post_json(http, garbage)), 400, "candidate: expected")
            portless = "candidate:1 1 udp 2130706431 127.0.0.1 port typ host"
            body = {"type": "remote_candidate", "id": sid, "candidates": [{"candidate": portless}]}
            _refused(*(await post_json(http, body)), 400, "candidate: port must be a number")
            bare = "candidate:1 1 udp 2130706431 127.0.0.1 50001 typ host"
            body = {"type": "remote_candidate", "id": sid, "candidates": [{"candidate": bare}]}
            status, text = await post_json(http, body)
            assert status in (200, 400) and "Error" not in text, text
            viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            await viewer.setRemoteDescription(RTCSessionDescription(offer_doc["sdp"], "offer"))
            await viewer.setLocalDescription(await viewer.createAnswer())
            answer = {"type": "answer", "id": sid, "sdp": viewer.localDescription.sdp}
            status, text = await post_json(http, answer)
            assert status == 200, text  # the bare candidate did not poison the session
            await viewer.close()

            # JSON nested 5,000 deep.
            _refused(*(await post_json(http, "[" * 5000 + "]" * 5000)), 400, "nested")
            deep = '{"type": "remote_candidate", "id": "x", "candidates": [' + "[" * 900
            _refused(*(await post_json(http, deep + "]" * 901 + "}")), 400, "candidate")

    run(main())
    log = stack.log()
    assert "Traceback" not in log, log[-3000:]
    assert stack.status()["services"]["webrtc"]["state"] == "running"


def test_bodies_longer_than_a_route_needs_are_refused_before_being_read(stack: Stack) -> None:
    """Pins: signalling bodies up to aiohttp's 1 MiB were read and relayed over ZeroMQ."""
    big = "v=0\r\n" + "a=x-padding:" + "p" * 300_000 + "\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"

    async def chunked() -> Any:
        for _ in range(40):
            yield b"a" * 10_000

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            sdp = {"Content-Type": "application/sdp"}
            async with http.post(stack.url("/whep"), data=big, headers=sdp) as r:
                _refused(r.status, await r.text(), 413, "the offer is longer than 64 KiB")
            async with http.post(stack.url("/whep"), data=chunked(), headers=sdp) as r:
                _refused(r.status, await r.text(), 413, "longer than")
            body = json.dumps({"type": "offer", "sdp": big})
            async with http.post(stack.url("/webrtc"), data=body) as r:
                _refused(r.status, await r.text(), 413, "the body is longer than 64 KiB")
            frag = {"Content-Type": "application/trickle-ice-sdpfrag"}
            async with http.patch(stack.url("/whep/x"), data=big, headers=frag) as r:
                _refused(r.status, await r.text(), 413, "the sdpfrag is longer than 16 KiB")

    run(main())


def test_a_request_in_the_moment_the_webrtc_service_dies_is_answered_after_its_restart(
    stack: Stack,
) -> None:
    """Pins: a /webrtc request sent as the webrtc service died waited out the full 15 s
    signalling timeout (then 503), though supervisord had it back in about a second."""
    pid = stack.status()["services"]["webrtc"]["pid"]
    os.kill(pid, signal.SIGSTOP)  # it holds the request unread, then dies with it
    result: dict[str, Any] = {}

    def request() -> None:
        async def go() -> None:
            body = json.dumps({"type": "request", "keepAlive": False})
            async with (
                aiohttp.ClientSession() as http,
                http.post(stack.url("/webrtc"), data=body) as r,
            ):
                result["status"], result["text"] = r.status, await r.text()

        asyncio.run(go())

    started = time.monotonic()
    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    thread.join(30)
    took = time.monotonic() - started
    assert result.get("status") == 200, (result, stack.log()[-2000:])
    assert took < 9.0, f"answered after {took:.1f} s"


def test_the_session_url_works_resolved_against_the_page_or_the_endpoint(stack: Stack) -> None:
    """Pins: Location was only ``whep/<id>``, so a WHEP player that resolves it against
    its page (Eyevinn's) sent its DELETE to the page's own server. Directly, and behind an
    nginx-style prefix proxy that says where it mounts Titanium, the URL is absolute;
    behind one that does not, it stays relative and works against the endpoint."""
    page = "http://127.0.0.1:9/mainsail/"  # the printer UI's page, on another server

    async def proxy(request: web.Request) -> web.StreamResponse:
        """nginx ``location /webcam/ { proxy_pass http://mjpgstreamer1/; }``, plus the
        forwarded headers when the test asks for them."""
        path = request.path_qs.removeprefix(PREFIX)
        headers = {"Host": "mjpgstreamer1", "Content-Type": request.content_type}
        if request.query.get("forward") == "1":
            headers.update({"X-Forwarded-Host": request.host, "X-Forwarded-Prefix": PREFIX})
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method, stack.url(path), data=await request.read(), headers=headers
            ) as r,
        ):
            out = web.Response(status=r.status, body=await r.read())
            if "Location" in r.headers:
                out.headers["Location"] = r.headers["Location"]
            return out

    async def session_url(
        http: aiohttp.ClientSession, endpoint: str, headers: dict[str, str]
    ) -> str:
        pc, offer = await _offer()
        sdp = {"Content-Type": "application/sdp", **headers}
        async with http.post(endpoint, data=offer, headers=sdp) as r:
            assert r.status == 201, await r.text()
            location: str = r.headers["Location"]
        await pc.close()
        return location

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", PREFIX + "/{tail:.*}", proxy)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        front = f"http://127.0.0.1:{port}{PREFIX}"
        try:
            async with aiohttp.ClientSession() as http:
                origin = {"Origin": "http://127.0.0.1:9"}
                direct = await session_url(http, stack.url("/whep"), origin)
                assert direct.startswith(stack.base + "/whep/"), direct
                async with http.delete(urllib.parse.urljoin(page, direct)) as r:
                    assert r.status == 200
                told = await session_url(http, front + "/whep?forward=1", origin)
                assert told.startswith(f"http://127.0.0.1:{port}{PREFIX}/whep/"), told
                async with http.delete(urllib.parse.urljoin(page, told)) as r:
                    assert r.status == 200
                hidden = await session_url(http, front + "/whep", origin)
                assert hidden.startswith("whep/"), hidden
                async with http.delete(urllib.parse.urljoin(front + "/whep", hidden)) as r:
                    assert r.status == 200
        finally:
            await runner.cleanup()

    run(main())
