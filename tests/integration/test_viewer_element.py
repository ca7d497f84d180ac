"""The ``<titanium-video>`` element against a stand-in front door mounted under an nginx-style
prefix (``/webcam/``) that has no WebRTC, no H.264 socket and no HLS: every request stays
under the prefix, the WHEP offer is what a server expects, a 501 sends the element down its
chain for good (the H.264 socket and the HLS playlist refused, then MJPEG), and its helpers
agree with the Python side."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import numpy as np
import pytest
import simplejpeg
from aiohttp import web

from tests.integration.browser import Browser
from tests.integration.conftest import free_port
from titanium.common.timecode import crc8, draw_timecode
from titanium.services.mjpeg.multipart import OPENING, STREAM_HEADERS, part

PREFIX = "/webcam"
PLAYER = "document.querySelector('titanium-video')"
STATIC = resources.files("titanium.services.mjpeg").joinpath("static")


class FrontDoorWithoutWebRTC:
    """The viewer's side of Titanium's front door, under ``/webcam/``: the page, the
    script, ``status``, an MJPEG stream of timecoded 320x240 frames at 10 fps, and a WHEP
    endpoint that answers 501. Records every request."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[tuple[str, str]] = []
        self.offers: list[tuple[str, str]] = []  # (content type, SDP)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._started.wait(10), "the stand-in front door did not start"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(middlewares=[self._record])
        app.add_routes(
            [
                web.get(f"{PREFIX}/", self._page),
                web.get(f"{PREFIX}/{{script}}.js", self._script),
                web.get(f"{PREFIX}/status", self._status),
                web.get(f"{PREFIX}/stream", self._stream),
                web.post(f"{PREFIX}/whep", self._whep),
            ]
        )
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        response: web.StreamResponse = await handler(request)
        return response

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(
            text=STATIC.joinpath("index.html").read_text(), content_type="text/html"
        )

    async def _script(self, request: web.Request) -> web.Response:
        return web.Response(
            text=STATIC.joinpath(request.match_info["script"] + ".js").read_text(),
            content_type="text/javascript",
        )

    async def _status(self, request: web.Request) -> web.Response:
        camera = {
            "device": "testpattern",
            "source": "testpattern",
            "online": True,
            "format": "YU12",
            "width": 320,
            "height": 240,
            "fps_configured": 10,
            "fps_measured": 10.0,
            "frames_dropped": 0,
            "viewers": 1,
            "max_viewers": 10,
            "error": "",
        }
        return web.json_response(
            {"cameras": {"cam0": camera}, "services": {"mjpeg": {"state": "running"}}}
        )

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=STREAM_HEADERS)
        await response.prepare(request)
        await response.write(OPENING)
        luma = np.full((240, 320, 1), 90, dtype=np.uint8)
        try:
            while True:
                now = time.time()
                draw_timecode(luma[:, :, 0], now)
                jpeg = simplejpeg.encode_jpeg(luma, quality=80, colorspace="GRAY")
                await response.write(part(jpeg, now))
                await asyncio.sleep(0.1)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    async def _whep(self, request: web.Request) -> web.Response:
        self.offers.append((request.content_type, await request.text()))
        return web.Response(status=501, text="this server has no WebRTC\n")

    def close(self) -> None:
        async def stop() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def front_door() -> Iterator[FrontDoorWithoutWebRTC]:
    server = FrontDoorWithoutWebRTC()
    yield server
    server.close()


def _first_video_codec(sdp: str) -> str:
    """The codec of the first payload type in the offer's m=video line."""
    lines = sdp.splitlines()
    media = next(line for line in lines if line.startswith("m=video"))
    first = media.split()[3]
    rtpmap = next(line for line in lines if line.startswith(f"a=rtpmap:{first} "))
    return rtpmap.split()[1]


def test_under_a_prefix_without_webrtc_the_element_settles_on_mjpeg(
    front_door: FrontDoorWithoutWebRTC, browser: Browser
) -> None:
    page = browser.open(front_door.url(f"{PREFIX}/"))
    stats = page.wait_for(
        f"{PLAYER}?.stats.mode === 'mjpeg' && {PLAYER}.stats.framesDecoded >= 5"
        f" && {PLAYER}.stats.latencyMs !== null && {PLAYER}.stats",
        15,
    )
    # The last step that failed on the way down: LL-HLS (the stand-in has none).
    assert "HLS playlist answered 404" in stats["error"], stats
    assert (stats["width"], stats["height"]) == (320, 240), stats
    assert 0 <= stats["latencyMs"] < 2000, stats

    # The offer is what a WHEP server expects, with H.264 first (Titanium sends nothing else).
    assert len(front_door.offers) == 1, front_door.requests
    content_type, sdp = front_door.offers[0]
    assert content_type == "application/sdp"
    assert "m=video" in sdp and "a=recvonly" in sdp
    assert _first_video_codec(sdp) == "H264/90000", sdp

    # 501 means "no WebRTC here", and a socket or a playlist refused before any frame means
    # no such path here: the element stays on MJPEG and asks none of them again.
    time.sleep(3)
    assert len(front_door.offers) == 1, front_door.requests
    for path, query in (("jmuxer", "camera=cam0&pace=0"), ("hls/index.m3u8", "camera=cam0")):
        asked = [r for r in front_door.requests if r[1].split("?")[0] == f"{PREFIX}/{path}"]
        assert asked == [("GET", f"{PREFIX}/{path}?{query}")], front_door.requests
    assert page.eval(f"{PLAYER}.stats.mode") == "mjpeg"

    # Every URL the page used was relative: nothing left the prefix.
    outside = [r for r in front_door.requests if not r[1].startswith(f"{PREFIX}/")]
    assert not outside, outside
    paths = {path.split("?")[0] for _, path in front_door.requests}
    assert {f"{PREFIX}/whep", f"{PREFIX}/stream", f"{PREFIX}/status"} <= paths, paths
    assert (
        "GET",
        f"{PREFIX}/stream?camera=cam0",
    ) in front_door.requests, front_door.requests


HELPERS_JS = """(async () => {
  const v = await import('./titanium-video.js');
  const offer = {ufrag: 'uF', pwd: 'pW', medias: [
    {line: 'm=video 9 UDP/TLS/RTP/SAVPF 96', mid: '0'},
    {line: 'm=audio 9 UDP/TLS/RTP/SAVPF 111', mid: '1'},
  ]};
  return {
    crc: %s.map((bytes) => v.crc8(bytes)),
    links: v.parseLinkIceServers(
      '<stun:stun.example.org:3478>; rel="ice-server", ' +
      '<turn:turn.example.org:3478?transport=udp>; rel="ice-server"; username="u,1"; ' +
      'credential="p;w"; credential-type="password", <https://example.org/x>; rel="next"'),
    frag: v.sdpFragment(offer, [
      {candidate: 'candidate:1 1 udp 2113937151 10.0.0.2 50000 typ host', sdpMid: '0'},
      {candidate: 'candidate:2 1 udp 2113937151 10.0.0.2 50001 typ host', sdpMLineIndex: 1},
    ]),
  };
})()"""


def test_element_helpers_agree_with_the_server_side(
    front_door: FrontDoorWithoutWebRTC, browser: Browser
) -> None:
    page = browser.open(front_door.url(f"{PREFIX}/"))
    samples = [list(range(6)), [255] * 6, [0x01, 0x8B, 0xF2, 0x3C, 0x55, 0xAA]]
    got = page.eval(HELPERS_JS % samples)
    assert got["crc"] == [crc8(bytes(s)) for s in samples]
    assert got["links"] == [
        {"urls": ["stun:stun.example.org:3478"]},
        {
            "urls": ["turn:turn.example.org:3478?transport=udp"],
            "username": "u,1",
            "credential": "p;w",
        },
    ]
    assert got["frag"] == (
        "a=ice-ufrag:uF\r\na=ice-pwd:pW\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n"
        "a=candidate:1 1 udp 2113937151 10.0.0.2 50000 typ host\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n"
        "a=candidate:2 1 udp 2113937151 10.0.0.2 50001 typ host\r\n"
    )
    # And the front door's own reader of the fragment finds both, in their sections.
    sdpfrag = pytest.importorskip("titanium.services.mjpeg.sdpfrag")
    parsed = sdpfrag.parse_sdpfrag(got["frag"])
    assert [(c["sdpMid"], c["candidate"].split()[5]) for c in parsed] == [
        ("0", "50000"),
        ("1", "50001"),
    ]
