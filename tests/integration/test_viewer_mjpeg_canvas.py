"""The element's MJPEG through fetch + createImageBitmap + canvas (mjpegcanvas.js), which
Chromium shows a display refresh earlier than a multipart <img>, and its fallback to <img>
when the stream cannot be read with fetch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web

from tests.integration.browser import Browser
from tests.integration.test_viewer_element import PLAYER, PREFIX, FrontDoorWithoutWebRTC

PLAYING = (
    f"{PLAYER}?.stats.mode === 'mjpeg' && {PLAYER}.stats.framesDecoded >= 5"
    f" && {PLAYER}.stats.latencyMs !== null && {PLAYER}.stats"
)


class FrontDoorRefusingFetch(FrontDoorWithoutWebRTC):
    """The stand-in, but /stream answers 500 to fetch() (Sec-Fetch-Dest: empty) and streams
    to <img> (Sec-Fetch-Dest: image): a reader that cannot use fetch."""

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Sec-Fetch-Dest") == "empty":
            return web.Response(status=500, text="no fetch here\n")
        return await super()._stream(request)


@pytest.fixture
def front_door() -> Iterator[FrontDoorWithoutWebRTC]:
    server = FrontDoorWithoutWebRTC()
    yield server
    server.close()


@pytest.fixture
def refusing_front_door() -> Iterator[FrontDoorRefusingFetch]:
    server = FrontDoorRefusingFetch()
    yield server
    server.close()


def test_mjpeg_is_drawn_on_a_canvas(front_door: FrontDoorWithoutWebRTC, browser: Browser) -> None:
    """Pins: MJPEG went through a multipart <img>, which Chromium shows one refresh late
    (~14 ms at 720p, docs/performance.md); the element reads it with fetch onto a canvas."""
    page = browser.open(front_door.url(f"{PREFIX}/?mode=mjpeg"))
    stats = page.wait_for(PLAYING, 15)
    assert stats["mjpegReader"] == "canvas", stats
    assert (stats["width"], stats["height"]) == (320, 240), stats
    assert 0 <= stats["latencyMs"] < 2000, stats
    shown = page.eval(
        f"[...{PLAYER}.shadowRoot.querySelectorAll('img, canvas')].filter((e) => !e.hidden)"
        ".map((e) => e.tagName)"
    )
    assert shown == ["CANVAS"], shown
    streams = [r for r in front_door.requests if r[1].startswith(f"{PREFIX}/stream")]
    assert len(streams) == 1, front_door.requests


def test_a_stream_fetch_cannot_read_falls_back_to_img(
    refusing_front_door: FrontDoorRefusingFetch, browser: Browser
) -> None:
    """Pins: when fetch gets no frame (here a 500; in the field a proxy without CORS), the
    element shows the stream through <img> rather than nothing."""
    page = browser.open(refusing_front_door.url(f"{PREFIX}/?mode=mjpeg"))
    stats = page.wait_for(PLAYING, 15)
    assert stats["mjpegReader"] == "img", stats
    assert (stats["width"], stats["height"]) == (320, 240), stats
