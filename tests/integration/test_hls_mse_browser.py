"""The LL-HLS muxer's fMP4 in Chromium's Media Source Extensions: what hls.js (Mainsail's
and Fluidd's player) hands its fragments to, stricter than ffmpeg about the boxes."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.browser import Browser, find_chromium
from tests.unit.hls_clip import clip
from titanium.services.mjpeg.hls.fmp4 import TIMESCALE
from titanium.services.mjpeg.hls.segmenter import Segmenter

PLAY_JS = """
(async (codecs, init, parts) => {
  const bytes = b => Uint8Array.from(atob(b), c => c.charCodeAt(0));
  const v = document.createElement('video');
  v.muted = true;
  document.body.appendChild(v);
  const ms = new MediaSource();
  v.src = URL.createObjectURL(ms);
  await new Promise(r => ms.addEventListener('sourceopen', r, {once: true}));
  const sb = ms.addSourceBuffer(`video/mp4; codecs="${codecs}"`);
  const append = b => new Promise((ok, fail) => {
    sb.addEventListener('updateend', ok, {once: true});
    sb.addEventListener('error', () => fail(new Error('append failed')), {once: true});
    sb.appendBuffer(b);
  });
  await append(bytes(init));
  for (const p of parts) await append(bytes(p));
  ms.endOfStream();
  const ranges = [];
  for (let i = 0; i < sb.buffered.length; i++) {
    ranges.push([sb.buffered.start(i), sb.buffered.end(i)]);
  }
  v.currentTime = ranges[0][0];
  await v.play();
  await new Promise(r => v.addEventListener('ended', r, {once: true}));
  const q = v.getVideoPlaybackQuality();
  return {ranges, frames: q.totalVideoFrames, size: [v.videoWidth, v.videoHeight],
          error: v.error && v.error.message};
})
"""


@pytest.mark.skipif(find_chromium() is None, reason="needs Debian's chromium")
def test_chromium_mse_plays_every_fragment_without_a_gap() -> None:
    """Pins fMP4 that MSE refuses or misplaces (avcC, trun data offset, tfdt, sample
    flags): appended part by part, Chromium buffers one range from the first pts to the
    last and plays through it, decoding the fed frames."""
    aus = clip(95)
    seg = Segmenter(segment_count=10)
    for au in aus:
        seg.push(au.data, au.pts, au.keyframe, au.wall)
    parts = [p for s in [*seg.segments, seg.current] if s for p in s.parts]
    end = sum(p.duration for p in parts)
    b64 = [base64.b64encode(p.data).decode() for p in parts]
    args = json.dumps([seg.codecs, base64.b64encode(seg.init).decode(), b64])[1:-1]
    with Browser.launch() as browser:
        page = browser.open("about:blank")
        got = page.eval(f"({PLAY_JS})({args})", timeout=30)
    assert got["error"] is None and got["size"] == [320, 240]
    ((start, stop),) = got["ranges"]
    assert start == pytest.approx(aus[0].pts / TIMESCALE, abs=0.002)
    assert stop == pytest.approx((aus[0].pts + end) / TIMESCALE, abs=0.002)
    fed = round(end * 30 / TIMESCALE)  # the clip's frames are 1/30 s apart
    assert fed >= 90 and fed - 2 <= got["frames"] <= fed  # the last may not be shown
