"""``<titanium-video>`` in Debian's Firefox ESR (headless, WebDriver BiDi: tests/integration/
firefox.py), the page on another origin, against a real stack: the element plays on the best
path Firefox allows there, and each path it has is tried on its own (``mode=``). What Firefox
plays is recorded in docs/frontends.md; this test holds it to that.

Firefox decodes WebRTC's H.264 with the OpenH264 plugin, which it downloads on first use; with
no network (as here, and on many printers' LANs) it has none, offers no H.264, and the element
steps down to H.264 over a WebSocket, which Firefox decodes with WebCodecs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.firefox import Firefox, FirefoxPage, find_firefox
from tests.integration.origin import OtherOrigin
from tests.stack import Stack

PLAYER = "document.querySelector('titanium-video')"
ADD_PLAYER_JS = """(async () => {
  await import(%(base)r + '/titanium-video.js');
  const v = document.createElement('titanium-video');
  for (const [name, value] of Object.entries(%(attributes)s)) v.setAttribute(name, value);
  document.body.appendChild(v);
  return true;
})()"""

pytestmark = pytest.mark.skipif(find_firefox() is None, reason="needs Debian's firefox-esr")


@pytest.fixture(scope="module")
def firefox() -> Iterator[Firefox]:
    with Firefox.launch() as browser:
        yield browser


def _player(firefox: Firefox, origin: OtherOrigin, stack: Stack, mode: str) -> FirefoxPage:
    page = firefox.open(origin.url("/"))
    attributes = {"src": stack.base + "/", "camera": "cam0", "mode": mode}
    page.eval(ADD_PLAYER_JS % {"base": stack.base, "attributes": attributes})
    return page


def _plays(page: FirefoxPage, mode: str, timeout: float) -> dict[str, Any]:
    stats: dict[str, Any] = page.wait_for(
        f"{PLAYER}.stats.mode === {mode!r} && {PLAYER}.stats.framesDecoded > 10"
        f" && {PLAYER}.stats.latencyMs !== null && {PLAYER}.stats",
        timeout,
    )
    return stats


def test_firefox_plays_each_path_it_has(
    stack: Stack, firefox: Firefox, other_origin: OtherOrigin
) -> None:
    auto = _plays(_player(firefox, other_origin, stack, "auto"), "h264", 40)
    assert auto["codec"].startswith("H.264 avc1.42"), auto
    assert 0 < auto["latencyMs"] < 2000, auto
    mjpeg = _plays(_player(firefox, other_origin, stack, "mjpeg"), "mjpeg", 30)
    assert (mjpeg["width"], mjpeg["height"]) == (640, 480), mjpeg
    # WebRTC without the plugin: Firefox's offer has no H.264, the server says so, and the
    # element keeps trying (mode=webrtc takes no fallback) with the reason in its figures.
    webrtc = _player(firefox, other_origin, stack, "webrtc")
    error = webrtc.wait_for(f"{PLAYER}.stats.error", 20)
    assert "no H.264" in error and webrtc.eval(f"{PLAYER}.stats.mode") != "webrtc", error
