"""``<titanium-video>`` steps down its chain when a path is taken away, and back up when it
returns: WebRTC, then H.264 over a WebSocket decoded with WebCodecs, then LL-HLS with Media
Source Extensions, then MJPEG. Each step is proven in headless Chromium with the page on
another origin, against a real stack: no ``RTCPeerConnection`` (H.264 plays), no
``VideoDecoder`` either (LL-HLS plays), no ``MediaSource`` either (MJPEG plays), and UDP
blocked in a network namespace of the test's own (WebRTC cannot connect, H.264 over TCP
plays; once UDP is allowed again the element is back on WebRTC by itself)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.integration.browser import Browser, Page, find_chromium
from tests.integration.nat_services import NetnsHttp
from tests.integration.origin import OtherOrigin
from tests.stack import Stack, free_port

PLAYER = "document.querySelector('titanium-video')"
OVERLAY = f"{PLAYER}.shadowRoot.querySelector('.overlay').textContent"
# (scripts, attributes, names to take away) → the element on the page.
ADD_PLAYER_JS = """async (scripts, attributes, remove) => {
  for (const name of remove) {
    delete window[name];
    window[name] = undefined;
  }
  await import(scripts + '/titanium-video.js');
  const v = document.createElement('titanium-video');
  for (const [name, value] of Object.entries(attributes)) v.setAttribute(name, value);
  document.body.appendChild(v);
  return true;
}"""


def _add_player(page: Page, stack: Stack, remove: list[str]) -> None:
    attributes = {"src": stack.base + "/", "camera": "cam0"}
    page.eval(f"({ADD_PLAYER_JS})({stack.base!r}, {attributes!r}, {remove!r})")


def _playing(mode: str) -> str:
    return (
        f"{PLAYER}?.stats.mode === {mode!r} && {PLAYER}.stats.framesDecoded > 10"
        f" && {PLAYER}.stats.latencyMs !== null && {PLAYER}.stats"
    )


def test_without_webrtc_the_element_plays_h264_over_a_websocket(
    stack: Stack, browser: Browser, other_origin: OtherOrigin
) -> None:
    page = browser.open(other_origin.url("/"))
    _add_player(page, stack, ["RTCPeerConnection"])
    stats: dict[str, Any] = page.wait_for(_playing("h264"), 30)
    assert stats["codec"].startswith("H.264 avc1.42"), stats
    assert (stats["width"], stats["height"]) == (640, 480), stats
    assert 0 < stats["latencyMs"] < 2000, stats
    assert page.eval(OVERLAY).startswith("H.264 over WebSocket"), page.eval(OVERLAY)
    # Frames keep coming, at about the camera's rate (the test pattern's 30 fps).
    first = stats["framesDecoded"]
    page.wait_for(f"{PLAYER}.stats.framesDecoded > {first + 30}", 10)


def test_without_webrtc_or_webcodecs_the_element_plays_ll_hls(
    stack: Stack, browser: Browser, other_origin: OtherOrigin
) -> None:
    page = browser.open(other_origin.url("/"))
    _add_player(page, stack, ["RTCPeerConnection", "VideoDecoder"])
    stats = page.wait_for(_playing("hls"), 40)
    assert (stats["width"], stats["height"]) == (640, 480), stats
    assert 0 < stats["latencyMs"] < 5000, stats
    assert page.eval(OVERLAY).startswith("LL-HLS"), page.eval(OVERLAY)
    first = stats["framesDecoded"]
    page.wait_for(f"{PLAYER}.stats.framesDecoded > {first + 30}", 10)


def test_without_webrtc_webcodecs_or_mse_the_element_plays_mjpeg(
    stack: Stack, browser: Browser, other_origin: OtherOrigin
) -> None:
    page = browser.open(other_origin.url("/"))
    remove = ["RTCPeerConnection", "VideoDecoder", "MediaSource", "ManagedMediaSource"]
    _add_player(page, stack, remove)
    stats = page.wait_for(_playing("mjpeg"), 30)
    assert stats["codec"] == "MJPEG", stats


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=10)


class NoUdp:
    """A network namespace of the test's own in which every UDP packet is dropped (nft, on
    output: loopback too) until :meth:`allow`."""

    TABLE = "ti_noudp"

    def __init__(self) -> None:
        self.ns = f"ti-noudp-{os.getpid()}"
        _run("ip", "netns", "add", self.ns)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        _run("ip", "-n", self.ns, "link", "set", "lo", "up")
        # A default route, into a veth pair whose both ends are here and whose far end has
        # no address, so it delivers nowhere: without one Chromium gathers no candidate at
        # all, loopback included.
        _run("ip", "-n", self.ns, "link", "add", "void0", "type", "veth", "peer", "name", "void1")
        _run("ip", "-n", self.ns, "addr", "add", "10.254.254.1/24", "dev", "void0")
        for dev in ("void0", "void1"):
            _run("ip", "-n", self.ns, "link", "set", dev, "up")
        _run("ip", "-n", self.ns, "route", "add", "default", "via", "10.254.254.2")
        nft = ("ip", "netns", "exec", self.ns, "nft")
        _run(*nft, f"add table inet {self.TABLE}")
        _run(*nft, f"add chain inet {self.TABLE} out {{ type filter hook output priority 0 ; }}")
        _run(*nft, f"add rule inet {self.TABLE} out meta l4proto udp drop")

    def allow(self) -> None:
        _run("ip", "netns", "exec", self.ns, "nft", f"delete table inet {self.TABLE}")

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=10)


@pytest.fixture
def no_udp() -> Iterator[NoUdp]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    blocked = NoUdp()
    try:
        yield blocked
    finally:
        blocked.close()


async def _blank_page(request: web.Request) -> web.Response:
    return web.Response(text="<!doctype html><title>printer UI</title>", content_type="text/html")


def test_with_udp_blocked_h264_plays_and_webrtc_comes_back(
    make_stack: Callable[..., Stack], no_udp: NoUdp
) -> None:
    if find_chromium() is None:
        pytest.skip("needs Debian's chromium")
    stack = make_stack(netns=no_udp.ns)
    app = web.Application()
    app.router.add_get("/", _blank_page)
    origin = NetnsHttp(no_udp.ns, "127.0.0.1", free_port(), app)
    try:
        with Browser.launch(netns=no_udp.ns) as browser:
            page = browser.open(origin.url("/"))
            _add_player(page, stack, [])
            stats = page.wait_for(_playing("h264"), 45)
            assert stats["error"], stats  # why WebRTC was left: no candidate pair connected
            no_udp.allow()
            # The element retries WebRTC in the background (2 s, then 4, 8, … with jitter).
            page.wait_for(
                f"{PLAYER}.stats.mode === 'webrtc' && {PLAYER}.stats.framesDecoded > 10", 60
            )
            assert page.eval(OVERLAY).startswith("WebRTC"), page.eval(OVERLAY)
    finally:
        origin.close()
