"""``<titanium-video mirage-server=…>`` against a recording stand-in for the Mirage proxy
(docs/mirage-protocol.md), on its own origin, the page on a third one: the element signals
WHEP at ``/d/DEVICE/whep/CAMERA?token=T``, keeps the token on the session URL for PATCH and
DELETE, shows the proxy's refusal, and never falls back to MJPEG (the proxy carries no video).
The stand-in either refuses with a fixed reply or passes the exchange on to a real stack."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.integration.browser import Browser, Page
from tests.integration.conftest import Stack, free_port
from tests.integration.origin import OtherOrigin

PLAYER = "document.querySelector('titanium-video')"
STATIC = resources.files("titanium.services.mjpeg").joinpath("static")
DEVICE, CAMERA, TOKEN = "printer-1", "cam0", "tok.en-1"
WHEP_PATH = f"/d/{DEVICE}/whep/{CAMERA}"


class ProxyStandIn:
    """Records every request but CORS preflights and scripts, serves the viewer scripts under
    ``/static/``, and answers WHEP with ``refusal`` (status, text) or, without one, by
    passing offer, PATCH and DELETE on to ``stack``'s front door."""

    def __init__(self, refusal: tuple[int, str] | None = None, stack: Stack | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.refusal = refusal
        self.stack = stack
        self.requests: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        assert self._started.wait(10), "the proxy stand-in did not start"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(middlewares=[self._cors])
        app.router.add_get("/static/{script}.js", self._script)
        app.router.add_route("*", "/{tail:.*}", self._whep)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._started.set()
        self._loop.run_forever()

    @web.middleware
    async def _cors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "OPTIONS, POST, PATCH, DELETE"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, If-Match"
        else:
            if not request.path.startswith("/static/"):
                self.requests.append((request.method, request.path_qs))
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = "Location, Link, ETag"
        return response

    async def _script(self, request: web.Request) -> web.Response:
        text = STATIC.joinpath(request.match_info["script"] + ".js").read_text()
        return web.Response(text=text, content_type="text/javascript")

    async def _whep(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return web.Response(status=204)
        if self.refusal is not None:
            return web.Response(status=self.refusal[0], text=self.refusal[1])
        assert self.stack is not None
        # Passed on to the front door as the printer's dial-out service would, minus the
        # WebSocket: the session id is the front door's.
        tail = request.path.removeprefix(WHEP_PATH)
        target = self.stack.url(f"/whep{tail}?camera={CAMERA}")
        headers = {k: v for k, v in request.headers.items() if k in ("Content-Type", "If-Match")}
        async with (
            aiohttp.ClientSession() as http,
            http.request(request.method, target, data=await request.read(), headers=headers) as r,
        ):
            reply = web.Response(status=r.status, body=await r.read())
            if r.content_type:
                reply.content_type = r.content_type
            if "ETag" in r.headers:
                reply.headers["ETag"] = r.headers["ETag"]
            if "Location" in r.headers:
                session = r.headers["Location"].rsplit("/", 1)[-1]
                reply.headers["Location"] = f"{WHEP_PATH}/{session}?token={TOKEN}"
            return reply

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


# (scripts, attributes) → adds the element to the page.
ADD_PLAYER_JS = """async (scripts, attributes) => {
  await import(scripts + '/titanium-video.js');
  const v = document.createElement('titanium-video');
  for (const [name, value] of Object.entries(attributes)) v.setAttribute(name, value);
  document.body.appendChild(v);
  return true;
}"""
OVERLAY = f"{PLAYER}.shadowRoot.querySelector('.overlay').textContent"
IMG_SRC = f"{PLAYER}.shadowRoot.querySelector('img').getAttribute('src')"


def _add_player(page: Page, proxy: ProxyStandIn, **attributes: str) -> None:
    # src points at the stand-in's /lan/: an MJPEG fallback would show up in its record.
    attributes = {"src": f"{proxy.base}/lan/", "mirage-server": proxy.base, **attributes}
    page.eval(f"({ADD_PLAYER_JS})({proxy.base + '/static'!r}, {attributes!r})")


@pytest.fixture
def refusing_proxy(request: pytest.FixtureRequest) -> Iterator[ProxyStandIn]:
    proxy = ProxyStandIn(refusal=request.param)
    yield proxy
    proxy.close()


@pytest.mark.parametrize(
    "refusing_proxy", [(401, "token expired"), (503, "printer-1 is not connected")], indirect=True
)
def test_signals_through_the_proxy_url_and_shows_its_refusal(
    refusing_proxy: ProxyStandIn, browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins: mirage-server, device and camera-id were ignored (the element asked the page's
    own directory, with the token as a /t/ prefix), and a failed WebRTC fell back to an
    MJPEG stream the proxy cannot carry."""
    status, reason = refusing_proxy.refusal or (0, "")
    page = browser.open(other_origin.url("/"))
    _add_player(page, refusing_proxy, device=DEVICE, token=TOKEN, **{"camera-id": CAMERA})
    stats = page.wait_for(f"({PLAYER}.stats.error ?? '').includes({reason!r}) && {PLAYER}.stats")
    assert str(status) in stats["error"] and stats["mode"] == "none", stats
    assert stats["state"] == ("failed" if status == 401 else "reconnecting"), stats
    overlay = page.eval(OVERLAY)
    assert reason in overlay and "carries no video" in overlay, overlay
    time.sleep(2.5)  # time enough for an MJPEG fallback to be tried
    url = f"{WHEP_PATH}?token={TOKEN}"
    assert refusing_proxy.requests[:2] == [("OPTIONS", url), ("POST", url)], refusing_proxy.requests
    assert all(r == ("OPTIONS", url) or r == ("POST", url) for r in refusing_proxy.requests)
    assert page.eval(IMG_SRC) is None and page.eval(f"{PLAYER}.stats.mode") == "none"


def test_a_missing_device_is_an_error_and_nothing_is_asked(
    browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins: without device the element still went to the front door's URLs."""
    proxy = ProxyStandIn(refusal=(500, "must not be asked"))
    try:
        page = browser.open(other_origin.url("/"))
        _add_player(page, proxy, token=TOKEN, **{"camera-id": CAMERA})
        stats = page.wait_for(f"{PLAYER}.stats.state === 'failed' && {PLAYER}.stats")
        assert "device is missing" in stats["error"], stats
        assert "device is missing" in page.eval(OVERLAY)
        time.sleep(2)
        assert proxy.requests == [], proxy.requests
    finally:
        proxy.close()


def test_plays_through_the_proxy_and_keeps_the_token_on_the_session_url(
    stack: Stack, browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins: the trickle PATCH and the DELETE must reach the session URL the proxy answered,
    token included, and video plays peer to peer meanwhile (the stand-in relays only
    signalling, to a real stack)."""
    proxy = ProxyStandIn(stack=stack)
    try:
        page = browser.open(other_origin.url("/"))
        _add_player(page, proxy, device=DEVICE, token=TOKEN, **{"camera-id": CAMERA})
        page.wait_for(f"{PLAYER}.stats.mode === 'webrtc' && {PLAYER}.stats.framesDecoded > 10", 30)
        page.eval(f"{PLAYER}.remove(), true")  # the element's end: its DELETE
        deadline = time.monotonic() + 5
        while not any(m == "DELETE" for m, _ in proxy.requests) and time.monotonic() < deadline:
            time.sleep(0.1)
        methods = [m for m, _ in proxy.requests]
        assert methods[:2] == ["OPTIONS", "POST"], proxy.requests
        assert "PATCH" in methods and "DELETE" in methods, proxy.requests
        for method, path in proxy.requests:
            if method in ("PATCH", "DELETE"):
                assert path.startswith(f"{WHEP_PATH}/") and path.endswith(f"?token={TOKEN}")
        assert not any("/t/" in p or "/lan/" in p for _, p in proxy.requests), proxy.requests
    finally:
        proxy.close()
