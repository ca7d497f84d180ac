"""Processes come and go: a killed capture is restarted and viewers carry on; a stop
leaves nothing behind; a missing source shows the offline frame and resumes by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import simplejpeg

from tests.integration.conftest import Stack
from tests.integration.mjpeg_client import MjpegClient
from titanium.common.timecode import read_timecode_jpeg


def test_killed_capture_is_restarted_and_viewers_get_frames_within_5s(stack: Stack) -> None:
    old_pid = stack.status()["services"]["capture-cam0"]["pid"]
    viewer = MjpegClient(stack.port)
    try:
        viewer.frames_for(0.5)
        killed_at = time.time()
        os.kill(old_pid, signal.SIGKILL)
        while True:
            headers, _ = viewer.next_part()
            if float(headers["x-timestamp"]) > killed_at + 0.2:
                break
            assert time.time() - killed_at < 5.0, "no new frame within 5 s of the kill"
        assert time.time() - killed_at < 5.0
        assert viewer.frames_for(1.0) >= 20
    finally:
        viewer.close()
    stack.wait_for(lambda st: st["services"]["capture-cam0"]["pid"] not in (None, old_pid))


def test_stop_exits_0_and_leaves_no_process_segment_or_socket(stack: Stack) -> None:
    services = stack.status()["services"]
    pids = [s["pid"] for s in services.values()]
    assert stack.leftovers(), "the running stack should have its ring and sockets"
    viewer = MjpegClient(stack.port)
    viewer.next_part()
    assert stack.stop() == 0, stack.log()
    viewer.close()
    assert stack.leftovers() == []
    for pid in [*pids, stack.proc.pid]:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), pid


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_file_source_plays_a_file_made_here(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    clip = tmp_path / "print.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=15",
            "-t",
            "1",
            "-pix_fmt",
            "yuv420p",
            str(clip),
        ],
        check=True,
        timeout=60,
    )
    stack = make_stack([{"device": f"file:{clip}", "resolution": "320x240", "fps": 15}])
    stack.wait_for(
        lambda st: st["cameras"]["cam0"]["online"] and st["cameras"]["cam0"]["frames"] > 20
    )
    cam = stack.status()["cameras"]["cam0"]
    assert cam["source"] == f"file:{clip}" and cam["format"] == "YU12"
    viewer = MjpegClient(stack.port)
    try:
        # A 1 s clip, looped: frames keep coming well past its end.
        assert viewer.frames_for(2.5) >= 30
        _, jpeg = viewer.next_part()
        assert simplejpeg.decode_jpeg_header(jpeg)[:2] == (240, 320)
    finally:
        viewer.close()


def test_missing_source_shows_offline_frame_then_resumes_by_itself(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    clip = tmp_path / "later.mp4"
    stack = make_stack([{"device": f"file:{clip}", "resolution": "320x240", "fps": 10}])
    stack.wait_for(lambda st: st["cameras"]["cam0"]["error"] != "")
    cam = stack.status()["cameras"]["cam0"]
    assert not cam["online"] and str(clip) in cam["error"]
    code, _, offline = stack.get("/snapshot")
    assert code == 200 and simplejpeg.decode_jpeg_header(offline)[:2] == (240, 320)
    stamp = read_timecode_jpeg(offline)  # the offline frame is fresh, not a stale image
    assert stamp is not None and time.time() - stamp < 2.0
    made = tmp_path / "made.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10",
            "-t",
            "1",
            "-pix_fmt",
            "yuv420p",
            str(made),
        ],
        check=True,
        timeout=60,
    )
    made.rename(clip)  # the "camera" comes back
    stack.wait_for(lambda st: st["cameras"]["cam0"]["online"], timeout=10)
    code, _, live = stack.get("/snapshot")
    assert code == 200 and read_timecode_jpeg(live) is None  # the clip, not the offline frame


def test_capture_is_pinned_and_real_time_scheduled_as_configured(
    make_stack: Callable[..., Stack],
) -> None:
    cpu = max(os.sched_getaffinity(0))
    stack = make_stack(
        [{"device": "testpattern", "resolution": "640x480", "cpu": cpu, "realtime_priority": 5}]
    )
    pid = stack.status()["services"]["capture-cam0"]["pid"]
    assert os.sched_getaffinity(pid) == {cpu}
    if os.geteuid() == 0:  # elsewhere SCHED_FIFO may be refused, which capture logs
        assert os.sched_getscheduler(pid) == os.SCHED_FIFO
        assert os.sched_getparam(pid).sched_priority == 5
    front = stack.status()["services"]["mjpeg"]["pid"]
    assert os.sched_getscheduler(front) == os.SCHED_OTHER
