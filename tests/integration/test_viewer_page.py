"""The viewer page at ``/`` in a real headless Chromium: one ``<titanium-video>`` per camera
plays the stream, its frames carry live timecodes, and the status line names the camera."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.integration.browser import Browser, Page
from tests.integration.conftest import Stack
from titanium.common.timecode import read_timecode

PLAYER = "document.querySelector('titanium-video')"

# The strip region of the frame the player's <img> shows now, as grey levels, plus what the
# viewer's own JavaScript decoder reads from the same pixels.
STRIP_JS = """(async () => {
  const player = document.querySelector('titanium-video');
  // MJPEG is drawn on a canvas (or, as the fallback, in an <img>): whichever is shown.
  const img = [...player.shadowRoot.querySelectorAll('img, canvas')].find((e) => !e.hidden);
  const w = img.naturalWidth ?? img.width, h = img.naturalHeight ?? img.height;
  const sw = Math.round(w / 80 * 34), sh = Math.round(w / 80 * 4);
  const canvas = document.createElement('canvas');
  canvas.width = sw;
  canvas.height = sh;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0, sw, sh, 0, 0, sw, sh);
  const rgba = ctx.getImageData(0, 0, sw, sh).data;
  const grey = [];
  for (let i = 0; i < rgba.length; i += 4) {
    grey.push(Math.round(0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2]));
  }
  const viewer = await import('./titanium-video.js');
  return {width: w, height: h, sw, sh, grey, js: viewer.decodeStrip(rgba, sw, w)};
})()"""


def strip_time(page: Page) -> tuple[float, float | None]:
    """(Python's read of the displayed frame's timecode, the viewer's JS read), in seconds."""
    got: dict[str, Any] = page.eval(STRIP_JS)
    frame = np.full((got["height"], got["width"]), 128, dtype=np.uint8)
    frame[: got["sh"], : got["sw"]] = np.array(got["grey"], dtype=np.uint8).reshape(
        got["sh"], got["sw"]
    )
    captured = read_timecode(frame)
    assert captured is not None, "no valid timecode in the displayed frame\n" + page.diagnostics()
    js = got["js"] / 1000 if got["js"] is not None else None
    return captured, js


def test_page_plays_mjpeg_through_the_viewer_element(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    page = browser.open(stack.url("/?mode=mjpeg"))
    shot = tmp_path / "viewer.png"
    try:
        page.wait_for(f"{PLAYER}?.stats.mode === 'mjpeg' && {PLAYER}.stats.framesDecoded > 10", 15)
        size = page.eval(
            f"[...{PLAYER}.shadowRoot.querySelectorAll('img, canvas')].filter((e) => !e.hidden)"
            ".map((e) => [e.naturalWidth ?? e.width, e.naturalHeight ?? e.height])[0]"
        )
        assert size == [640, 480]

        first, first_js = strip_time(page)
        time.sleep(1.0)
        second, second_js = strip_time(page)
        # The frames on screen move on with the clock, and are fresh.
        assert 0.5 < second - first < 2.5, (first, second)
        assert time.time() - second < 2.0, time.time() - second
        # The viewer's JavaScript reader agrees with common/timecode.py on the same pixels.
        assert (first_js, second_js) == (first, second)

        # Wait for a full second of figures after the first ones.
        page.wait_for(f"{PLAYER}.stats.fps > 0 && {PLAYER}.latencySamples.length > 20", 10)
        stats = page.eval(f"{PLAYER}.stats")
        assert stats["mode"] == "mjpeg" and stats["codec"] == "MJPEG", stats
        assert (stats["width"], stats["height"]) == (640, 480), stats
        assert stats["fps"] >= 5, stats  # 30 configured; a loaded 2-core machine may lag
        assert isinstance(stats["latencyMs"], int | float), stats
        assert 0 <= stats["latencyMs"] < 2000, stats
        overlay = page.eval(f"{PLAYER}.shadowRoot.querySelector('.overlay').textContent")
        assert overlay.startswith("MJPEG") and " ms" in overlay, overlay

        # The status line names the camera and its source.
        text = page.wait_for(
            "document.getElementById('cameras').innerText.includes('testpattern')"
            " && document.body.innerText",
            5,
        )
        assert "cam0" in text and "640x480" in text and "mjpeg: running" in text, text
        page.screenshot(shot)

        # Removing the element closes its stream at once: nobody is counted as watching.
        page.eval(f"{PLAYER}.remove()")
        stack.wait_for(lambda st: st["cameras"]["cam0"]["viewers"] == 0, timeout=5)
    except AssertionError as e:
        page.screenshot(shot)
        raise AssertionError(f"{e}\nscreenshot: {shot}\n{page.diagnostics()}") from None


def test_page_in_auto_mode_shows_a_picture_whatever_the_server_offers(
    stack: Stack, browser: Browser
) -> None:
    """WebRTC first; on a server without WebRTC (WHEP 404/501, or no frame within 5 s) the
    element falls back to MJPEG and says why."""
    page = browser.open(stack.url("/"))
    page.wait_for(
        f"['webrtc', 'mjpeg'].includes({PLAYER}?.stats.mode) && {PLAYER}.stats.framesDecoded > 10",
        25,
    )
    stats = page.eval(f"{PLAYER}.stats")
    if stats["mode"] == "mjpeg":
        assert stats["error"], f"fell back to MJPEG without a reason: {stats}"
    assert (stats["width"], stats["height"]) == (640, 480), stats


def test_one_player_per_camera(make_stack: Callable[..., Stack], browser: Browser) -> None:
    stack = make_stack(
        [
            {"id": "left", "device": "testpattern", "resolution": "320x240", "fps": 10},
            {"id": "right", "device": "testpattern", "resolution": "480x360", "fps": 10},
        ]
    )
    page = browser.open(stack.url("/?mode=mjpeg"))
    players = page.wait_for(
        """(() => {
          const all = [...document.querySelectorAll('titanium-video')];
          const ok = all.length === 2 && all.every((p) => p.stats.framesDecoded > 3);
          return ok && all.map((p) => [p.getAttribute('camera'), p.stats.width]);
        })()""",
        20,
    )
    assert sorted(players) == [["left", 320], ["right", 480]], players
