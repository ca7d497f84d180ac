"""Capture → shown in headless Chromium, read from the timecode strip: the ``<titanium-video>``
element in WebRTC mode (with Chromium's jitter buffer per emitted frame from getStats), in
H.264-over-WebSocket mode (``h264``: WebCodecs, drawn to a canvas), in LL-HLS mode (``hls``)
and in MJPEG mode, and the MJPEG path taken apart stage by stage in the same browser;
``jmuxer`` is Mainsail's jmuxer player on ``/jmuxer`` (npm ci --prefix tests/js first).

    python -m benchmarks.chromium_latency [--size 1280x720] [--fps 30] [--duration 10]
                                          [--playout 0,0 | none]
                                          [--modes webrtc,h264,hls,jmuxer,mjpeg,stages,rtcstages]

``--playout none`` leaves ``titanium.webrtc.playout_delay_ms`` out of the config (what a
build without the key runs). ``stages`` reads ``/stream`` with fetch in the page and, per
frame: bytes complete (last byte of the JPEG arrived) − capture, ``createImageBitmap``
decode, strip read, and the next animation frame after drawing to a canvas − capture.
The element's own MJPEG figure samples its ``<img>`` once per animation frame.
``rtcstages`` splits the element's WebRTC capture → shown per frame (see :func:`rtc_stages`)
and adds libx264's own time on the same test-pattern frames.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.integration.browser import Browser, Page
from tests.integration.governor_client import call
from tests.integration.test_jmuxer_browser import JMUXER, PLAYER_JS
from tests.stack import Stack
from titanium.common.endpoints import Endpoints
from titanium.services.capture.testpattern import TestPatternSource
from titanium.services.encoder.backend import EncoderSettings, SourceFrame
from titanium.services.encoder.pyav import Libx264Backend

PLAYER = "document.querySelector('titanium-video')"

JITTER_JS = f"""(async () => {{
  const report = await {PLAYER}.peerConnection.getStats();
  let s = null;
  report.forEach((r) => {{ if (r.type === 'inbound-rtp' && r.kind === 'video') s = r; }});
  return [s.jitterBufferDelay, s.jitterBufferTargetDelay, s.jitterBufferEmittedCount];
}})()"""

# (seconds) → {arrive, decode, read, shown}: lists of ms, one entry per frame.
STAGES_JS = """async (seconds) => {
  const { StripReader } = await import('./timecode.js');
  const strip = new StripReader();
  const canvas = document.createElement('canvas');
  document.body.appendChild(canvas);
  const ctx = canvas.getContext('2d');
  const now = () => performance.timeOrigin + performance.now();
  const out = {arrive: [], decode: [], read: [], shown: []};
  const controller = new AbortController();
  const res = await fetch('stream', {signal: controller.signal});
  const reader = res.body.getReader();
  let buf = new Uint8Array(0);
  const end = performance.now() + seconds * 1000;
  const indexOf = (a, b0, b1, from) => {
    for (let i = from; i + 1 < a.length; i++) if (a[i] === b0 && a[i + 1] === b1) return i;
    return -1;
  };
  while (performance.now() < end) {
    const { value, done } = await reader.read();
    if (done) break;
    const arrived = now();
    const joined = new Uint8Array(buf.length + value.length);
    joined.set(buf); joined.set(value, buf.length); buf = joined;
    for (;;) {
      const soi = indexOf(buf, 0xff, 0xd8, 0);
      if (soi < 0) break;
      const eoi = indexOf(buf, 0xff, 0xd9, soi + 2);
      if (eoi < 0) { buf = buf.slice(soi); break; }
      const jpeg = buf.slice(soi, eoi + 2);
      buf = buf.slice(eoi + 2);
      if (buf.length > 0 && indexOf(buf, 0xff, 0xd9, 0) >= 0) continue;  // newer one queued
      const t0 = now();
      const bitmap = await createImageBitmap(new Blob([jpeg], {type: 'image/jpeg'}));
      const t1 = now();
      const got = strip.read(bitmap, bitmap.width, bitmap.height);
      const t2 = now();
      if (canvas.width !== bitmap.width) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
      }
      ctx.drawImage(bitmap, 0, 0);
      bitmap.close();
      const shown = await new Promise((r) => requestAnimationFrame(() => r(now())));
      if (got?.ms == null) continue;
      out.arrive.push(arrived - got.ms);
      out.decode.push(t1 - t0);
      out.read.push(t2 - t1);
      out.shown.push(shown - got.ms);
    }
  }
  controller.abort();
  return out;
}"""


# (seconds) → {frames: [[capture ms from the strip, rtpTimestamp, receive, processing ms,
# presentation, expected display]], before, after: getStats of the inbound video}; the
# times are epoch ms, read in one requestVideoFrameCallback per presented frame.
RTC_STAGES_JS = f"""async (seconds) => {{
  const {{ StripReader }} = await import('./timecode.js');
  const strip = new StripReader();
  const player = {PLAYER};
  const video = player.video;
  const stats = async () => {{
    const report = await player.peerConnection.getStats();
    let s = null;
    report.forEach((r) => {{ if (r.type === 'inbound-rtp' && r.kind === 'video') s = r; }});
    return s;
  }};
  const o = performance.timeOrigin;
  const frames = [];
  const before = await stats();
  const end = performance.now() + seconds * 1000;
  await new Promise((done) => {{
    const onFrame = (now, m) => {{
      let got = null;
      try {{ got = strip.read(video, m.width, m.height); }} catch (e) {{ got = null; }}
      frames.push([got?.ms ?? null, m.rtpTimestamp ?? null, o + (m.receiveTime ?? NaN),
                   1000 * (m.processingDuration ?? NaN), o + (m.presentationTime ?? NaN),
                   o + m.expectedDisplayTime]);
      if (performance.now() < end) video.requestVideoFrameCallback(onFrame); else done();
    }};
    video.requestVideoFrameCallback(onFrame);
  }});
  return {{frames, before, after: await stats()}};
}}"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else 0.0


def line(name: str, values: list[float]) -> str:
    return (
        f"  {name:<34} p50 {pct(values, 50):6.1f}  p95 {pct(values, 95):6.1f}  "
        f"p99 {pct(values, 99):6.1f} ms  ({len(values)} frames)"
    )


def element(page: Page, seconds: float, webrtc: bool) -> list[str]:
    page.wait_for(f"{PLAYER}?.stats.framesDecoded > 10", 30)
    time.sleep(2)
    page.eval(f"{PLAYER}.latencySamples.length = 0")
    before = page.eval(JITTER_JS) if webrtc else None
    time.sleep(seconds)
    rows = [line("element: capture → shown", page.eval(f"{PLAYER}.latencySamples"))]
    if before is not None:
        after = page.eval(JITTER_JS)
        n = max(1, after[2] - before[2])
        rows.append(
            f"  jitter buffer per emitted frame: delay {1000 * (after[0] - before[0]) / n:.2f} ms,"
            f" target {1000 * (after[1] - before[1]) / n:.2f} ms"
        )
    return rows


def jmuxer_player(page: Page, stack: Stack, fps: int, seconds: float) -> str:
    """Mainsail's jmuxer-stream player (the npm package Mainsail pins, fed as Mainsail
    feeds it: tests/integration/test_jmuxer_browser.py) on ``/jmuxer``, paced at ``fps``;
    latency at the requestVideoFrameCallback of each frame shown."""
    page.eval(JMUXER.read_text() + "\n;typeof JMuxer")
    url = stack.url(f"/jmuxer?fps={fps}").replace("http://", "ws://")
    page.eval(f"{PLAYER_JS}({url!r}, {fps}, {stack.url('/timecode.js')!r})")
    page.wait_for("jm.shown > 10", 30)
    time.sleep(2)
    page.eval("jm.latency.length = 0")
    time.sleep(seconds)
    return line("jmuxer (Mainsail's): capture → shown", page.eval("jm.latency"))


def rtc_stages(page: Page, stack: Stack, seconds: float) -> list[str]:
    """WebRTC's capture → shown split per frame: the webrtc service's arrival and first
    send of each AU (by pts) joined with Chromium's requestVideoFrameCallback metadata of
    the same frame (by RTP timestamp = the sender's random origin + pts, the origin found
    from the frames whose strip was read)."""
    page.wait_for(f"{PLAYER}?.stats.framesDecoded > 10", 30)
    time.sleep(2)
    got = page.eval(f"({RTC_STAGES_JS})({seconds})", timeout=seconds + 30)
    status = call(Endpoints(stack.runtime_dir).webrtc_rpc(), "status", frames=True)
    server = {f[0]: f[1:] for cam in status["cameras"].values() for f in cam["frame_times"]}
    by_ms = {round(1000 * c): pts for pts, (c, _, _) in server.items()}
    frames = got["frames"]
    offsets = Counter((f[1] - by_ms[f[0]]) % 2**32 for f in frames if f[0] in by_ms and f[1])
    if not offsets:
        return ["  no frame of the page matched one of the webrtc service"]
    origin = offsets.most_common(1)[0][0]
    stages: dict[str, list[float]] = {name: [] for name in STAGE_NAMES}
    for _, rtp, receive, processing, presented, expected in got["frames"]:
        entry = server.get((rtp - origin) % 2**32) if rtp is not None else None
        if entry is None or entry[2] is None:
            continue
        capture, arrived, sent = (1000 * t for t in entry)
        for name, value in zip(
            STAGE_NAMES,
            (
                arrived - capture,
                sent - arrived,
                receive - sent,
                processing,
                presented - receive,
                expected - presented,
                presented - capture,
                expected - capture,
            ),
            strict=True,
        ):
            if value == value:  # NaN: Chromium left that field out
                stages[name].append(value)
    rows = [f"  RTP origin {origin}: {len(stages[STAGE_NAMES[-1]])} frames joined by RTP timestamp"]
    rows += [line(name, values) for name, values in stages.items()]
    b, a = got["before"], got["after"]
    decoded = max(1, a["framesDecoded"] - b["framesDecoded"])
    emitted = max(1, a["jitterBufferEmittedCount"] - b["jitterBufferEmittedCount"])
    per = lambda key, n: 1000 * (a[key] - b[key]) / n  # noqa: E731
    rows.append(
        f"  getStats per frame: jitterBufferDelay {per('jitterBufferDelay', emitted):.2f} ms,"
        f" totalDecodeTime {per('totalDecodeTime', decoded):.2f} ms,"
        f" totalProcessingDelay {per('totalProcessingDelay', decoded):.2f} ms,"
        f" decoder {a.get('decoderImplementation')!r},"
        f" powerEfficientDecoder {a.get('powerEfficientDecoder')}"
    )
    return rows


def encode_floor(width: int, height: int, fps: int, frames: int = 150) -> list[str]:
    """libx264 as the encoder opens it, on the test pattern's frames, in this process: the
    part of "capture → AU in webrtc service" that is the codec's own cost (same minutes,
    same machine, but without the stack's processes on the same cores at that instant)."""
    source = TestPatternSource(width, height, fps)
    source.open()
    size = width * height * 3 // 2
    raw = []
    for _ in range(30):
        buf = bytearray(size)
        source.read_into(memoryview(buf), 1.0)
        raw.append(bytes(buf))
    source.close()
    backend = Libx264Backend(EncoderSettings(fps, 2_000_000, 2.0), width, height)
    took = []
    for i in range(frames):
        frame = SourceFrame(memoryview(raw[i % len(raw)]), "YU12", width, height, 0, 0)
        start = time.perf_counter()
        backend.encode(frame, False)
        took.append(1000 * (time.perf_counter() - start))
    backend.close()
    return [line("libx264 alone (load + encode)", took)]


STAGE_NAMES = (
    "capture → AU in webrtc service",
    "AU in → first sender took it",
    "taken → Chromium receiveTime",
    "processingDuration (decode)",
    "receiveTime → presentationTime",
    "presentationTime → expectedDisplayTime",
    "capture → presentationTime (decoded, to the compositor)",
    "capture → expectedDisplayTime (shown)",
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--playout", default="0,0")
    ap.add_argument("--modes", default="webrtc,mjpeg,stages")
    args = ap.parse_args()
    webrtc: dict[str, Any] = {"ice_addresses": ["127.0.0.1"]}
    if args.playout != "none":
        webrtc["playout_delay_ms"] = [int(x) for x in args.playout.split(",")]
    width, height = (int(x) for x in args.size.split("x"))
    camera = {"device": "testpattern", "resolution": args.size, "fps": args.fps}
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  load average {os.getloadavg()}  {args}")
    with tempfile.TemporaryDirectory() as tmp, Browser.launch() as browser:
        stack = Stack(Path(tmp), [camera], webrtc=webrtc)
        try:
            for mode in args.modes.split(","):
                print(mode)
                if mode == "rtcstages":
                    page = browser.open(stack.url("/?mode=webrtc"))
                    for row in rtc_stages(page, stack, args.duration):
                        print(row)
                    for row in encode_floor(width, height, args.fps):
                        print(row)
                elif mode == "jmuxer":
                    page = browser.open(stack.url("/status"))
                    print(jmuxer_player(page, stack, args.fps, args.duration))
                elif mode == "stages":
                    page = browser.open(stack.url("/status"))
                    got = page.eval(f"({STAGES_JS})({args.duration})", timeout=args.duration + 30)
                    print(line("bytes complete − capture", got["arrive"]))
                    print(line("createImageBitmap decode", got["decode"]))
                    print(line("strip read", got["read"]))
                    print(line("canvas, next animation frame − capture", got["shown"]))
                else:
                    page = browser.open(stack.url(f"/?mode={mode}"))
                    for row in element(page, args.duration, mode == "webrtc"):
                        print(row)
                page.close()
        finally:
            stack.stop()
    print(f"load average after {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
