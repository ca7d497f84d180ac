"""Behind the printer's own nginx, as MainsailOS and KIAUH configure it (tests/integration/
nginx.py): every plain-HTTP route works through the stock ``/webcam/`` location, which strips
the prefix, buffers nothing and forwards no ``Upgrade``: MJPEG (frames arrive as they are
made, not held by the proxy), snapshots, camera-streamer JSON and WHEP (its session URL
resolved under the prefix), go2rtc's ``POST /api/webrtc``, LL-HLS (playlists, a held
blocking reload, segments and parts), and Titanium's own viewer page under the prefix. The
WebSocket dialects are refused there with a reason (426), and play once the location has
the lines docs/frontends.md gives."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCSessionDescription

from tests.integration.browser import Browser
from tests.integration.mjpeg_client import MjpegClient
from tests.integration.nginx import Nginx, find_nginx
from tests.integration.rtc_client import (
    Received,
    camera_streamer_view,
    recvonly_offer,
    track_frames,
    whep_view,
)
from tests.stack import Stack

PLAYER = "document.querySelector('titanium-video')"
pytestmark = pytest.mark.skipif(find_nginx() is None, reason="needs Debian's nginx")


@pytest.fixture
def proxied(stack: Stack, tmp_path: Path) -> Iterator[Nginx]:
    server = Nginx(tmp_path / "nginx", stack.port)
    yield server
    server.close()


def test_mjpeg_passes_the_stock_location_unbuffered(proxied: Nginx) -> None:
    """Each part reaches the viewer as it is written: with the proxy holding parts back
    (buffering on, or output postponed) frames would arrive in bursts or not at all."""
    for path in ("/webcam/stream", "/webcam/?action=stream"):
        client = MjpegClient(proxied.port, path)
        try:
            assert client.status_line.split()[1] == "200", (path, client.status_line)
            assert client.headers["content-type"].startswith("multipart/x-mixed-replace")
            headers, jpeg = client.next_part()
            assert jpeg[:2] == b"\xff\xd8" and int(headers["content-length"]) == len(jpeg)
            start = time.monotonic()
            frames = client.frames_for(2.0)
            # The test pattern runs at 30 fps; a loaded 2-core machine still passes 10.
            assert frames >= 20, (path, frames, time.monotonic() - start)
        finally:
            client.close()


def test_snapshots_pass_the_stock_location(proxied: Nginx) -> None:
    for path in ("/webcam/snapshot", "/webcam/snapshot.jpg", "/webcam/?action=snapshot"):
        with urllib.request.urlopen(proxied.url(path), timeout=5) as r:
            body = r.read()
            assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg", path
            assert body[:2] == b"\xff\xd8" and int(r.headers["Content-Length"]) == len(body)


def test_hls_passes_the_stock_location(proxied: Nginx) -> None:
    """Pins hlsstream through /webcam/: the playlists' relative URIs resolve under the
    prefix, a blocking reload is held through the proxy and answered, and the init segment,
    a segment and the hinted part come back as fMP4."""

    def get(path: str, timeout: float = 20) -> tuple[str, bytes]:
        with urllib.request.urlopen(proxied.url("/webcam/hls/" + path), timeout=timeout) as r:
            assert r.status == 200, (path, r.status)
            return r.headers["Content-Type"], r.read()

    kind, body = get("index.m3u8")
    assert kind.startswith("application/vnd.apple.mpegurl"), kind
    assert body.decode().splitlines()[-1] == "stream.m3u8", body
    _, body = get("stream.m3u8")
    playlist = body.decode()
    last = max(int(m) for m in re.findall(r"^seg(\d+)\.mp4", playlist, re.M))
    _, body = get(f"stream.m3u8?_HLS_msn={last + 1}")
    held = body.decode()
    assert f"seg{last + 1}.mp4" in held, held
    hint = re.search(r'PRELOAD-HINT:TYPE=PART,URI="(part\d+\.mp4)"', held)
    assert hint is not None, held
    for name, box in (("init0.mp4", b"ftyp"), (f"seg{last}.mp4", b"moof"), (hint[1], b"moof")):
        kind, data = get(name)
        assert kind == "video/mp4" and data[4:8] == box, (name, kind, data[:8])


def test_camera_streamer_and_whep_play_through_the_stock_location(proxied: Nginx) -> None:
    base = proxied.url("/webcam")

    async def main() -> None:
        json_dialect = await camera_streamer_view(base, 4.0)
        assert json_dialect.frames > 10, json_dialect
        whep = await whep_view(base, 4.0)  # also DELETEs its session at the URL it was given
        assert whep.frames > 10, whep
        assert whep.session_url and whep.session_url.startswith(base + "/"), whep.session_url

    asyncio.run(main())


def test_the_viewer_page_plays_under_the_prefix(proxied: Nginx, browser: Browser) -> None:
    """Titanium's own page opened through nginx at /webcam/: its scripts, /status and the
    element's WHEP exchange all resolve under the prefix (an absolute URL would land on the
    printer UI's own root), and Chromium decodes frames."""
    page = browser.open(proxied.url("/webcam/"))
    page.wait_for(f"{PLAYER}?.stats?.framesDecoded > 10", 30)
    assert page.eval(f"{PLAYER}.getAttribute('camera')") == "cam0"


async def _play_go2rtc(base: str, websocket: bool) -> Received:
    """go2rtc's exchange at ``base``: over ``/api/ws`` or ``POST /api/webrtc``; frames for 3 s."""
    pc = await recvonly_offer()
    tracks: asyncio.Queue[Any] = asyncio.Queue()
    pc.on("track", tracks.put_nowait)
    async with aiohttp.ClientSession() as http:
        if websocket:
            async with http.ws_connect(f"{base}/api/ws?src=cam0") as ws:
                await ws.send_json({"type": "webrtc/offer", "value": pc.localDescription.sdp})
                reply = await ws.receive_json(timeout=20)
                assert reply["type"] == "webrtc/answer", reply
                await pc.setRemoteDescription(RTCSessionDescription(reply["value"], "answer"))
                got = await track_frames(tracks, 3.0)
        else:
            offer = {"type": "offer", "sdp": pc.localDescription.sdp}
            async with http.post(f"{base}/api/webrtc?src=cam0", json=offer) as r:
                assert r.status == 200, await r.text()
                answer = await r.json()
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            got = await track_frames(tracks, 3.0)
    await pc.close()
    return got


def test_websockets_are_refused_by_the_stock_location_with_a_reason(proxied: Nginx) -> None:
    """nginx forwards the handshake as a plain GET: the client hears 426 and why, and the
    same dialect's POST form plays through the same location."""
    base = proxied.url("/webcam")

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            for path in ("/api/ws?src=cam0", "/jmuxer"):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(base + path)
                assert refused.value.status in (400, 426), (path, refused.value)
        got = await _play_go2rtc(base, websocket=False)
        assert got.frames > 10, got

    asyncio.run(main())


def test_websockets_pass_with_the_documented_lines(stack: Stack, tmp_path: Path) -> None:
    server = Nginx(tmp_path / "nginx", stack.port, upgrade=True)
    try:

        async def main() -> None:
            got = await _play_go2rtc(server.url("/webcam"), websocket=True)
            assert got.frames > 10, got
            url = server.url("/webcam/jmuxer")
            async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
                first = await ws.receive(timeout=20)
                assert first.type == aiohttp.WSMsgType.BINARY, first
                assert first.data[:4] == b"\x00\x00\x00\x01" and first.data[4] & 0x1F == 7

        asyncio.run(main())
    finally:
        server.close()
