"""Mainsail's and Fluidd's ``hlsstream`` player against Titanium: the real hls.js at the
version Mainsail pins (tests/js, installed by titanium.sh test) with exactly Mainsail's
config (Hlsstreamer.vue), and Video.js (the player the specification names), in headless
Chromium on a page from another origin, as Mainsail on port 80 plays Titanium on 8080."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.integration.browser import Browser, Page
from tests.integration.conftest import Stack
from tests.integration.origin import OtherOrigin

FPS = 15
JS = Path(__file__).parents[1] / "js" / "node_modules"
HLS_JS = JS / "hls.js" / "dist" / "hls.min.js"
VIDEO_JS = JS / "video.js" / "dist" / "video.min.js"
CAMERA = {"device": "testpattern", "resolution": "640x480", "fps": FPS, "keyframe_interval": 1}

# Frames shown are counted with requestVideoFrameCallback (one call per frame composited);
# each one's capture-to-shown latency is read from the test pattern's timecode strip with
# Titanium's own reader (static/timecode.js, imported from Titanium's origin).
COUNTER_JS = """(async (video, reader) => {
  const { StripReader } = await import(reader);
  const strip = new StripReader();
  const p = window.p = {video, shown: 0, latency: [], errors: []};
  const count = () => {
    p.shown++;
    const got = strip.read(video, video.videoWidth, video.videoHeight);
    if (got && got.ms !== null) p.latency.push(Date.now() - got.ms);
    video.requestVideoFrameCallback(count);
  };
  video.requestVideoFrameCallback(count);
  return true;
})"""

# Mainsail's play(), less Vue: the same config, loadSource, attachMedia, play on
# MANIFEST_PARSED. Fluidd's HlsCamera.vue passes the same settings.
MAINSAIL_JS = """((url) => {
  const video = document.createElement('video');
  video.autoplay = true;
  video.muted = true;
  document.body.appendChild(video);
  const hls = window.hls = new Hls({
    enableWorker: true,
    lowLatencyMode: true,
    maxLiveSyncPlaybackRate: 2,
    liveSyncDuration: 0.5,
    liveMaxLatencyDuration: 2,
    backBufferLength: 5,
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => { video.play(); });
  window.hlsErrors = [];
  hls.on(Hls.Events.ERROR, (e, data) => {
    window.hlsErrors.push(`${data.type} ${data.details} fatal=${data.fatal}`);
  });
  return video;
})"""

VIDEOJS_JS = """((url) => {
  const video = document.createElement('video');
  video.className = 'video-js';
  video.muted = true;
  document.body.appendChild(video);
  const player = window.player = videojs(video, {autoplay: 'muted', muted: true});
  player.src({src: url, type: 'application/x-mpegURL'});
  return player.tech({IWillNotUseThisInPlugins: true}).el();
})"""


def count_frames(page: Page, video_js: str, reader: str) -> None:
    page.eval(
        f"(async () => {{ const v = {video_js}; await ({COUNTER_JS})(v, {json.dumps(reader)}); "
        "return true; })()"
    )


def test_mainsails_hlsjs_plays_near_the_live_edge_with_a_token_in_every_uri(
    make_stack: Callable[..., Stack], browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins the dialect end to end as Mainsail plays it, with a query token in the stream
    URL: hls.js (blocking reloads, parts, preload hints) keeps showing new frames at about
    the camera's rate, every request it makes to /hls/ carries the token (segment URIs
    resolve relative to the playlist and would drop it), and it sits within its
    liveMaxLatencyDuration of the capture."""
    assert HLS_JS.exists(), f"{HLS_JS} missing: npm ci --prefix tests/js (titanium.sh test)"
    stack = make_stack([CAMERA], http={"auth": "token"})
    url = f"http://127.0.0.1:{stack.port}/cam0/hls/index.m3u8?token={stack.token}"
    page = browser.open(other_origin.url("/"))
    page.eval(HLS_JS.read_text() + "\n;typeof Hls")
    assert page.eval("Hls.isSupported()")
    reader = f"http://127.0.0.1:{stack.port}/timecode.js"
    count_frames(page, f"{MAINSAIL_JS}({json.dumps(url)})", reader)
    page.wait_for("p.shown > 5", 25)
    before = page.eval("p.latency.length")
    page.wait_for(f"p.shown >= {page.eval('p.shown') + 4 * FPS}", 8)  # 6 s for 4 s of frames
    state = page.eval(
        "({errors: hlsErrors, width: p.video.videoWidth, latencyMode: hls.lowLatencyMode,"
        " dropped: p.video.getVideoPlaybackQuality().droppedVideoFrames,"
        " urls: performance.getEntriesByType('resource').map(e => e.name)"
        "   .filter(u => u.includes('/hls/'))})"
    )
    fatal = [e for e in state["errors"] if "fatal=true" in e]
    assert fatal == [] and state["width"] == 640 and state["latencyMode"], state
    urls = state["urls"]
    assert any("/hls/part" in u for u in urls) and any("_HLS_msn=" in u for u in urls), urls
    assert any("/hls/init" in u for u in urls), urls
    untokened = [u for u in urls if f"token={stack.token}" not in u]
    assert untokened == [], untokened
    # hls.js blocks on its first reload only if the first segment's number is not 0; else
    # it waits a target duration (1 s here), stalls, and adds a second to its target latency.
    reloads = page.eval(
        "performance.getEntriesByType('resource').filter(e => e.name.includes('stream.m3u8'))"
        ".slice(0, 2).map(e => [e.startTime, e.responseEnd])"
    )
    gap = reloads[1][0] - reloads[0][1]
    assert gap < 600, f"hls.js waited {gap:.0f} ms before its first blocking reload"
    # The second half: after hls.js has caught up to its target (it starts further back).
    latency = sorted(page.eval("p.latency")[before:])
    assert len(latency) >= 3 * FPS, f"the timecode was read in {len(latency)} frames"
    p50, p95 = latency[len(latency) // 2], latency[len(latency) * 95 // 100]
    version = json.loads((JS / "hls.js" / "package.json").read_text())["version"]
    print(
        f"\nhls.js {version} capture to shown: p50 {p50} ms,"
        f" p95 {p95} ms over {len(latency)} frames; errors {state['errors']}"
    )
    # hls.js seeks forward beyond liveMaxLatencyDuration (2 s) behind the edge; the edge
    # itself is a part (0.2 s) and the encode behind the capture. Generous for 2 loaded cores.
    assert p50 < 2500, f"capture to shown: p50 {p50} ms, p95 {p95} ms"


def test_videojs_plays_the_playlist(
    make_stack: Callable[..., Stack], browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins the playlist and fMP4 against a second, independent HLS client (Video.js's VHS,
    which reads segments rather than parts): it shows new frames at about the camera's rate."""
    assert VIDEO_JS.exists(), f"{VIDEO_JS} missing: npm ci --prefix tests/js (titanium.sh test)"
    stack = make_stack([CAMERA])
    url = f"http://127.0.0.1:{stack.port}/cam0/hls/index.m3u8"
    page = browser.open(other_origin.url("/"))
    page.eval(VIDEO_JS.read_text() + "\n;typeof videojs")
    reader = f"http://127.0.0.1:{stack.port}/timecode.js"
    count_frames(page, f"{VIDEOJS_JS}({json.dumps(url)})", reader)
    page.wait_for("p.shown > 5", 30)
    page.wait_for(f"p.shown >= {page.eval('p.shown') + 4 * FPS}", 8)
    state = page.eval(
        "({error: player.error() && player.error().message, width: p.video.videoWidth,"
        " vhs: !!player.tech({IWillNotUseThisInPlugins: true}).vhs})"
    )
    assert state["error"] is None and state["width"] == 640, state
    latency = sorted(page.eval("p.latency"))
    if latency:
        print(
            f"\nVideo.js capture to shown: p50 {latency[len(latency) // 2]} ms"
            f" over {len(latency)} frames (VHS: {state['vhs']})"
        )
