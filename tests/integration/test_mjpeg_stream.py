"""The MJPEG stream and snapshots through a real ``titaniumctl up``, read by real clients."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable

import simplejpeg

from tests.integration.conftest import Stack
from tests.integration.mjpeg_client import MjpegClient, boundary_of
from titanium.common.timecode import read_timecode_jpeg


def test_ffmpeg_decodes_at_least_60_frames(stack: Stack) -> None:
    out = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "mpjpeg",
            "-i",
            stack.url("/stream"),
            "-frames:v",
            "60",
            "-f",
            "framecrc",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    frames = [ln for ln in out.stdout.splitlines() if ln and not ln.startswith("#")]
    assert len(frames) == 60


def test_stream_bytes_match_what_mainsail_and_fluidd_parse(
    make_stack: Callable[..., Stack],
) -> None:
    # 2 fps: a boundary that waited for the next frame would arrive 500 ms late.
    stack = make_stack([{"device": "testpattern", "resolution": "640x480", "fps": 2}])
    client = MjpegClient(stack.port, "/stream?timestamp=123&cacheBust=9")
    try:
        assert client.status_line.startswith("HTTP/1.1 200")
        assert client.headers["content-type"] == "multipart/x-mixed-replace;boundary=titanium-frame"
        assert boundary_of(client.headers["content-type"]) == "titanium-frame"
        assert client.headers["access-control-allow-origin"] == "*"
        assert "no-store" in client.headers["cache-control"]
        assert client.read_raw(18) == b"--titanium-frame\r\n"
        for _ in range(2):
            headers, jpeg = client.next_part()
            assert headers["content-type"] == "image/jpeg"
            assert int(headers["content-length"]) == len(jpeg)
            assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
            ts = float(headers["x-timestamp"])
            assert abs(ts - (read_timecode_jpeg(jpeg) or 0)) < 0.002
            start = time.monotonic()
            assert client.read_raw(20) == b"\r\n--titanium-frame\r\n"
            assert time.monotonic() - start < 0.2, "the boundary came with the next frame"
    finally:
        client.close()


def test_snapshots_in_every_dialect_are_fresh_jpegs_in_under_a_second(stack: Stack) -> None:
    for path in [
        "/snapshot",
        "/snapshot.jpg",
        "/?action=snapshot",
        "/snapshot?1700000000000",
        "/?action=snapshot&bypassCache=1",
        "/cam0/snapshot.jpg",
        "/snapshot?camera=cam0",
    ]:
        start = time.monotonic()
        code, headers, body = stack.get(path)
        elapsed = time.monotonic() - start
        assert code == 200, (path, body)
        assert elapsed < 1.0, (path, elapsed)
        assert headers["Content-Type"] == "image/jpeg"
        assert int(headers["Content-Length"]) == len(body)
        assert simplejpeg.decode_jpeg_header(body)[:2] == (480, 640)
        captured = read_timecode_jpeg(body)
        assert captured is not None and time.time() - captured < 1.0, path


def test_mjpg_streamer_stream_url_and_cors_preflight(stack: Stack) -> None:
    client = MjpegClient(stack.port, "/?action=stream")
    try:
        assert client.status_line.startswith("HTTP/1.1 200")
        client.next_part()
    finally:
        client.close()
    import urllib.request

    req = urllib.request.Request(
        stack.url("/stream"),
        method="OPTIONS",
        headers={"Origin": "http://printer.local", "Access-Control-Request-Method": "GET"},
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert r.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
        assert "Access-Control-Allow-Headers" not in r.headers  # a GET takes none


def test_bad_requests_get_a_reason_and_others_keep_being_served(stack: Stack) -> None:
    viewer = MjpegClient(stack.port)
    try:
        code, _, body = stack.get("/nosuchcam/stream")
        assert code == 404 and b"no camera 'nosuchcam'" in body and b"cam0" in body
        code, _, body = stack.get("/?action=explode")
        assert code == 400 and b"unknown action" in body
        code, headers, _ = stack.get("/stream?camera=other")
        assert code == 404 and headers["Access-Control-Allow-Origin"] == "*"
        assert viewer.frames_for(1.0) >= 10
    finally:
        viewer.close()


def test_max_viewers_answers_503_with_a_reason(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(streaming={"max_viewers": 2})
    first, second = MjpegClient(stack.port), MjpegClient(stack.port)
    try:
        first.next_part()
        second.next_part()
        code, headers, body = stack.get("/stream")
        assert code == 503
        assert b"max_viewers" in body and headers["Retry-After"]
        first.close()
        stack.wait_for(lambda st: st["cameras"]["cam0"]["viewers"] < 2, timeout=5)
        third = MjpegClient(stack.port)
        third.next_part()
        third.close()
    finally:
        second.close()


def _read_frames(port: int, seconds: float, counts: list[int], i: int) -> None:
    client = MjpegClient(port)
    try:
        counts[i] = client.frames_for(seconds)
    finally:
        client.close()


def test_ten_viewers_all_get_frames_encoded_once(stack: Stack) -> None:
    before = stack.status()["cameras"]["cam0"]
    counts = [0] * 10
    threads = [
        threading.Thread(target=_read_frames, args=(stack.port, 4.0, counts, i)) for i in range(10)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    time.sleep(1.5)  # capture reports its frame count once a second
    after = stack.status()["cameras"]["cam0"]
    captured = after["frames"] - before["frames"]
    encoded = after["jpeg_frames"] - before["jpeg_frames"]
    assert min(counts) >= 60, counts  # 4 s at 30 fps, allowing for start-up
    # One JPEG per captured frame, however many watch: not ten per frame. The counts
    # are up to a second (30 frames) stale at either end.
    assert max(counts) - 5 <= encoded <= captured + 35, (encoded, captured, counts)


def test_nothing_is_encoded_when_nobody_watches(stack: Stack) -> None:
    time.sleep(1.0)  # no viewer since start
    before = stack.status()["cameras"]["cam0"]
    time.sleep(1.5)
    after = stack.status()["cameras"]["cam0"]
    assert after["frames"] - before["frames"] >= 30  # capture runs
    assert after["jpeg_frames"] == before["jpeg_frames"]


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_stalled_viewer_neither_slows_others_nor_grows_memory(stack: Stack) -> None:
    pid = stack.status()["services"]["mjpeg"]["pid"]
    stalled = MjpegClient(stack.port)  # connects, then reads nothing for 10 s
    stalled.next_part()
    try:
        fast = MjpegClient(stack.port)
        fast.frames_for(1.0)
        rss_before = _rss_kb(pid)
        got = fast.frames_for(10.0)
        rss_after = _rss_kb(pid)
        fast.close()
        assert got >= 270, got  # 10 s at 30 fps, under 10 % lost
        assert rss_after - rss_before < 8 * 1024, (rss_before, rss_after)
    finally:
        stalled.close()
