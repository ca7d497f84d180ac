"""playout-delay in headless Chromium: the WHEP answer takes the extension Chromium offers,
our camera-streamer offer lists it, and the min/max from ``titanium.webrtc.playout_delay_ms``
reach Chromium's jitter buffer (getStats, per emitted frame)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.integration.browser import Browser, Page
from tests.integration.conftest import Stack
from titanium.services.webrtc.playout import PLAYOUT_DELAY_URI

PLAYER = "document.querySelector('titanium-video')"

# The jitter buffer's figures so far, from the element's live peer connection.
JITTER_JS = f"""(async () => {{
  const report = await {PLAYER}.peerConnection.getStats();
  let s = null;
  report.forEach((r) => {{ if (r.type === 'inbound-rtp' && r.kind === 'video') s = r; }});
  return {{
    delay: s.jitterBufferDelay, target: s.jitterBufferTargetDelay,
    emitted: s.jitterBufferEmittedCount, decoded: s.framesDecoded,
  }};
}})()"""


def watch(stack: Stack, browser: Browser, seconds: float) -> dict[str, Any]:
    """The element playing WebRTC from ``stack``: the answer it got, and over ``seconds``
    after a warm-up the jitter buffer delay and target per emitted frame (ms) and the
    timecode latencies (capture → shown) the element measured."""
    page: Page = browser.open(stack.url("/"))
    page.wait_for(f"{PLAYER}?.stats.mode === 'webrtc' && {PLAYER}.stats.framesDecoded > 10", 25)
    time.sleep(2)  # Chromium's estimate settles after the first frames
    page.eval(f"{PLAYER}.latencySamples.length = 0")
    before = page.eval(JITTER_JS)
    time.sleep(seconds)
    after = page.eval(JITTER_JS)
    emitted = after["emitted"] - before["emitted"]
    assert emitted > 0, (before, after, page.diagnostics())
    return {
        "answer": page.eval(f"{PLAYER}.peerConnection.remoteDescription.sdp"),
        "delay_ms": 1000 * (after["delay"] - before["delay"]) / emitted,
        "target_ms": 1000 * (after["target"] - before["target"]) / emitted,
        "latencies": sorted(page.eval(f"{PLAYER}.latencySamples")),
    }


def test_answer_negotiates_playout_delay_and_zero_empties_the_jitter_buffer(
    make_stack: Callable[..., Stack], browser: Browser
) -> None:
    """Pins: aiortc answered without playout-delay (it knows only mid and abs-send-time), so
    Chromium sized its jitter buffer itself; the default [0, 0] must be in the answer. (On
    loopback Chromium's own choice is already ~1 ms per frame, so the delay bound below
    guards against a regression, not against the old answer.)"""
    got = watch(make_stack(), browser, 5)
    assert PLAYOUT_DELAY_URI in got["answer"], got["answer"]
    figures = {k: v for k, v in got.items() if k != "answer"}
    print("[0, 0]:", figures)
    assert got["delay_ms"] < 3, figures  # not Chromium's own estimate


def test_configured_delay_reaches_chromiums_jitter_buffer(
    make_stack: Callable[..., Stack], browser: Browser
) -> None:
    """Pins: the configured min/max are what Chromium holds frames for: [100, 100] puts
    ~100 ms in its jitter buffer (a value it never picks by itself on loopback)."""
    stack = make_stack(webrtc={"ice_addresses": ["127.0.0.1"], "playout_delay_ms": [100, 100]})
    got = watch(stack, browser, 5)
    figures = {k: v for k, v in got.items() if k != "answer"}
    print("[100, 100]:", figures)
    assert got["delay_ms"] >= 60, figures


def test_camera_streamer_offer_lists_playout_delay(stack: Stack, browser: Browser) -> None:
    """Pins: our own offer (camera-streamer's exchange) must list the extension for Chromium
    to take it; aiortc's offer had only mid and abs-send-time."""
    page = browser.open(stack.url("/status"))
    offer = page.eval(
        """(async () => {
          const r = await fetch('webrtc', {method: 'POST',
            body: JSON.stringify({type: 'request', iceServers: []})});
          return (await r.json()).sdp;
        })()"""
    )
    assert f"a=extmap:6 {PLAYOUT_DELAY_URI}" in offer, offer
