"""The LL-HLS dialect (services/mjpeg/hlsstream.py) on a real stack, as hls.js drives it
(PROTOCOLS.md "More dialects / HLS"): the first playlist held until a segment exists,
blocking reload, the preload hint held, reasons for bad directives, the bounded window, one
muxer and one encode for every viewer, and the muxer's stop after idle."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from tests.integration.conftest import Stack
from tests.integration.hls_client import segments, viewer

FPS = 15
CAMERA = {"device": "testpattern", "resolution": "640x480", "fps": FPS, "keyframe_interval": 1}
HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(part\d+\.mp4)')


def media_sequence(playlist: str) -> int:
    return int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist).group(1))  # type: ignore[union-attr]


def text_of(stack: Stack, path: str, timeout: float = 20) -> str:
    code, headers, body = stack.get(path, timeout)
    assert code == 200, (path, code, body)
    assert headers["Content-Type"].startswith("application/vnd.apple.mpegurl"), headers
    return body.decode()


def test_blocking_reload_holds_then_answers_and_bad_directives_get_400(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins the routes hls.js needs: before them every /hls/ path was 404. The first
    playlist request waits for the first segment (no 503 for hls.js to back off from); a
    reload for a segment two ahead is held about a segment's time and then lists it; the
    preload hint's part is held until it exists; bad _HLS_* values get 400 with the reason."""
    stack = make_stack([CAMERA])
    first = text_of(stack, "/cam0/hls/index.m3u8")
    assert "#EXT-X-STREAM-INF:BANDWIDTH=" in first and "RESOLUTION=640x480" in first, first
    assert first.splitlines()[-1] == "stream.m3u8"
    playlist = text_of(stack, "/cam0/hls/stream.m3u8")
    assert "CAN-BLOCK-RELOAD=YES" in playlist and '#EXT-X-MAP:URI="init0.mp4"' in playlist
    last = segments(playlist)[-1]
    # Two past the last complete segment, part 0: about one to two segments away.
    want = last + 2
    start = time.monotonic()
    held = text_of(stack, f"/cam0/hls/stream.m3u8?_HLS_msn={want}&_HLS_part=0", 10)
    waited = time.monotonic() - start
    assert waited >= 0.5, f"answered in {waited:.2f} s: not held for segment {want}"
    assert segments(held)[-1] >= want - 1 and waited < 5, (waited, held)
    # The part it asked for is listed (part 0 of `want` follows the last listed segment).
    assert segments(held)[-1] == want - 1 or f"seg{want}.mp4" in held, held
    # The hint names the next part: requested at once, it is held until made, then served.
    hint = HINT.search(held)
    assert hint is not None, held
    code, headers, body = stack.get(f"/cam0/hls/{hint.group(1)}", 5)
    assert code == 200 and headers["Content-Type"] == "video/mp4" and body[4:8] == b"moof"
    code, _, init = stack.get("/cam0/hls/init0.mp4")
    assert code == 200 and init[4:8] == b"ftyp"
    for query, reason in (
        ("_HLS_msn=abc", b"_HLS_msn must be a whole number"),
        ("_HLS_msn=-1", b"_HLS_msn must be a whole number"),
        ("_HLS_msn=1&_HLS_part=x", b"_HLS_part must be a whole number"),
        ("_HLS_part=1", b"_HLS_part needs _HLS_msn"),
        (f"_HLS_msn={want + 50}", b"more than two past the last one"),
    ):
        code, _, body = stack.get(f"/cam0/hls/stream.m3u8?{query}")
        assert code == 400 and reason in body, (query, code, body)
    code, _, body = stack.get("/cam0/hls/seg999999.mp4")
    assert code == 404 and b"not in the LL-HLS window" in body, (code, body)
    code, _, body = stack.get("/nosuchcam/hls/stream.m3u8")
    assert code == 404, (code, body)


def test_viewers_share_one_encode_the_window_is_bounded_and_the_muxer_stops_when_idle(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins one muxer and one encode for every HLS viewer (each AU read once from the
    encoder's ring whatever the number of viewers), a window of seven segments (an old one
    is 404, not kept), and the idle stop: ``hls_idle_seconds`` after the last request the
    muxer is gone and the encoder, which only it kept busy, goes idle."""
    stack = make_stack([CAMERA], streaming={"hls_idle_seconds": 3})
    assert not stack.camera()["encoder"]["active"], "nobody watches yet"
    base = stack.url("/cam0/hls")
    text_of(stack, "/cam0/hls/stream.m3u8")
    code, _, seg1 = stack.get("/cam0/hls/seg1.mp4")  # the first: hls.js needs it non-zero
    assert code == 200 and seg1[4:8] == b"moof"
    before = stack.camera()
    seconds, clients = 9.0, 4

    async def run() -> list[tuple[int, int]]:
        return await asyncio.gather(*(viewer(base, seconds) for _ in range(clients)))

    got = asyncio.run(run())
    time.sleep(1.5)  # the encoder's counts reach /status once a second
    after = stack.camera()
    for playlists, parts in got:
        # 5 parts a second, each announced by a blocking reload: at the live edge.
        assert parts >= 0.7 * seconds * 5 and playlists >= 0.7 * seconds * 5, got
    encoded = after["encoder"]["frames_out"] - before["encoder"]["frames_out"]
    taken = after["jmuxer"]["taken"] - before["jmuxer"]["taken"]
    frames = (seconds + 1.5) * FPS
    assert encoded <= 1.5 * frames and taken <= 1.5 * frames, (encoded, taken, frames)
    assert after["hls"]["running"] and after["hls"]["started"] == 1, after["hls"]
    assert after["jmuxer"]["clients"] == 0, "the HLS muxer is no jmuxer client"
    assert after["hls"]["segments"] <= 7, after["hls"]
    # Nine seconds of 1 s segments: seg1 has left the seven-segment window.
    playlist = text_of(stack, "/cam0/hls/stream.m3u8")
    assert media_sequence(playlist) > 1 and len(segments(playlist)) == 7, playlist
    code, _, body = stack.get("/cam0/hls/seg1.mp4")
    assert code == 404 and b"not in the LL-HLS window" in body, (code, body)
    stack.wait_for(
        lambda s: (
            not s["cameras"]["cam0"]["hls"]["running"]
            and not s["cameras"]["cam0"]["encoder"]["active"]
        ),
        3 + 8,
        "the muxer stopped and the encoder idle",
    )
    code, _, body = stack.get("/cam0/hls/seg2.mp4")
    assert code == 404 and b"starts with a playlist request" in body, (code, body)
