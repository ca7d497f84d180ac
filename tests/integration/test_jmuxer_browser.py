"""Mainsail's jmuxer-stream player against Titanium: the real jmuxer package at the version
Mainsail pins (tests/js, installed by titanium.sh test), in headless Chromium, on a page
from another origin, fed exactly as Mainsail's JMuxerStream.vue feeds it: ``new JMuxer({node,
mode: 'video', flushingTime: 0, fps})``, a WebSocket with ``binaryType = 'arraybuffer'``
and ``feed({video: new Uint8Array(event.data)})`` per message."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.integration.browser import Browser
from tests.integration.conftest import Stack
from tests.integration.origin import OtherOrigin

FPS = 15
JMUXER = Path(__file__).parents[1] / "js" / "node_modules" / "jmuxer" / "dist" / "jmuxer.min.js"

# Mainsail's play(), less Vue; the counters are the test's. Frames shown are counted with
# requestVideoFrameCallback (one call per frame composited), so a decoded but never shown
# frame does not count.
# Each shown frame's capture-to-shown latency is read from the test pattern's timecode strip
# with Titanium's own reader (static/timecode.js, imported from Titanium's origin).
PLAYER_JS = """(async (url, fps, reader) => {
  const { StripReader } = await import(reader);
  const strip = new StripReader();
  const video = document.createElement('video');
  video.autoplay = true;
  document.body.appendChild(video);
  const jm = window.jm = {video, first: null, messages: 0, shown: 0, errors: [], ready: false,
                          latency: []};
  const count = () => {
    jm.shown++;
    const got = strip.read(video, video.videoWidth, video.videoHeight);
    if (got && got.ms !== null) jm.latency.push(Date.now() - got.ms);
    video.requestVideoFrameCallback(count);
  };
  video.requestVideoFrameCallback(count);
  const jmuxer = new JMuxer({
    node: video, mode: 'video', flushingTime: 0, fps,
    onReady: () => { jm.ready = true; },
    onError: (data) => { jm.errors.push(String(data)); },
  });
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  ws.addEventListener('message', (event) => {
    if (jm.first === null) jm.first = Array.from(new Uint8Array(event.data, 0, 5));
    jm.messages++;
    jmuxer.feed({video: new Uint8Array(event.data)});
  });
  ws.addEventListener('error', () => { jm.errors.push('websocket error'); });
  return true;
})"""


def test_mainsails_jmuxer_shows_frames_from_the_first_message_on(
    make_stack: Callable[..., Stack], browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins the dialect end to end, with a query token as Mainsail's stream URL carries
    one: the first message starts with an SPS (jmuxer drops anything before SPS/PPS), and
    the <video> keeps showing new frames at about the camera's rate."""
    assert JMUXER.exists(), f"{JMUXER} missing: npm ci --prefix tests/js (titanium.sh test)"
    stack = make_stack(
        [{"device": "testpattern", "resolution": "640x480", "fps": FPS, "keyframe_interval": 2}],
        http={"auth": "token"},
    )
    url = f"ws://127.0.0.1:{stack.port}/cam0/jmuxer?token={stack.token}"
    page = browser.open(other_origin.url("/"))
    page.eval(JMUXER.read_text() + "\n;typeof JMuxer")
    reader = f"http://127.0.0.1:{stack.port}/timecode.js"
    page.eval(f"{PLAYER_JS}({json.dumps(url)}, {FPS}, {json.dumps(reader)})")
    page.wait_for("jm.shown > 5", 20)
    first = page.eval("jm.first")
    assert first[:4] == [0, 0, 0, 1] and first[4] & 0x1F == 7, f"first message starts {first}"
    before = page.eval("jm.shown")
    page.wait_for(f"jm.shown >= {before + 2 * FPS}", 6)  # 3 s for 2 s of frames
    state = page.eval(
        "({errors: jm.errors, ready: jm.ready, width: jm.video.videoWidth,"
        " dropped: jm.video.getVideoPlaybackQuality().droppedVideoFrames})"
    )
    assert state["errors"] == [] and state["ready"] and state["width"] == 640, state
    latency = sorted(page.eval("jm.latency"))
    assert len(latency) >= 2 * FPS, f"the timecode was read in {len(latency)} frames"
    # jmuxer's own bound is its maxDelay of 500 ms; the two AUDs keep it from holding the
    # last two frames back (2 × 67 ms at 15 fps). Generous for a loaded 2-core machine.
    p50 = latency[len(latency) // 2]
    assert p50 < 1000, f"capture to shown: p50 {p50} ms over {len(latency)} frames"
