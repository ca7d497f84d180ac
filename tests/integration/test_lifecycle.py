"""Processes come and go: a killed capture is restarted and viewers carry on; a stop
leaves nothing behind; a missing source shows the offline frame and resumes by itself."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import simplejpeg

from tests.integration.clips import make_clip
from tests.integration.conftest import TITANIUMCTL, Stack, free_port
from tests.integration.mjpeg_client import Drain, MjpegClient
from tests.integration.rtc_client import HeldPeer
from tests.stack import terminate
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


def test_up_is_supervisord_itself_once_ready(stack: Stack) -> None:
    """Pins: `titaniumctl up` stayed resident as a second Python process beside supervisord
    (22 MB PSS only to wait and relay). Now the PID started as titaniumctl is supervisord
    (exec'd), no titaniumctl process remains once ready, and the URL is printed once."""
    deadline = time.monotonic() + 30
    while "Titanium is streaming" not in stack.log():
        assert time.monotonic() < deadline, stack.log()
        time.sleep(0.1)
    top = psutil.Process(stack.proc.pid)
    tree = [top, *top.children(recursive=True)]
    lines = {p.pid: " ".join(p.cmdline()) for p in tree}
    assert not [c for c in lines.values() if "titaniumctl" in c or "titanium.cli" in c], lines
    assert "titanium.supervise" in lines[top.pid], lines
    assert [c for c in lines.values() if "supervis" in c] == [lines[top.pid]], lines
    time.sleep(0.5)
    assert stack.log().count("Titanium is streaming. Open http://127.0.0.1:") == 1, stack.log()
    assert "running as root" not in stack.log() and "HTTP authentication" not in stack.log()


class SnapshotPoller:
    """Polls /snapshot on one keep-alive connection, as Mainsail's adaptive MJPEG does,
    until the server goes away; notes what each answer was."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.codes: list[int] = []
        self.broken = ""  # a response cut short, which a clean stop never does
        self.ended = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            while True:
                try:
                    conn.request("GET", "/snapshot")
                except OSError:
                    return  # refused or closed before the request: the server has gone
                try:
                    r = conn.getresponse()
                except (http.client.RemoteDisconnected, ConnectionResetError):
                    # No byte of an answer: the server closed the idle keep-alive
                    # connection as this request crossed its FIN (the RST that follows
                    # is the kernel's answer to data on a closed socket). A client
                    # retries that (RFC 9112 9.3.1); it is not a response cut short.
                    return
                except (OSError, http.client.HTTPException) as e:
                    self.broken = repr(e)
                    return
                try:
                    body = r.read()
                except (OSError, http.client.HTTPException) as e:
                    self.broken = repr(e)
                    return
                self.codes.append(r.status)
                if r.status == 200 and not body.startswith(b"\xff\xd8"):
                    self.broken = "not a JPEG"
                if r.will_close:
                    return
                time.sleep(0.05)
        finally:
            conn.close()
            self.ended.set()


def test_stop_with_every_kind_of_viewer_is_quick_and_kills_nobody(stack: Stack) -> None:
    """Pins: with an MJPEG viewer attached, SIGTERM took 13 s and supervisord SIGKILLed the
    front door after its wait (the server waited for the open stream to end), leaving
    its socket for titaniumctl to remove. Now every viewer is ended by the service that
    serves it and the whole stack stops within 3 s."""
    mjpeg = Drain(MjpegClient(stack.port))
    poller = SnapshotPoller(stack.port)
    peer = HeldPeer(stack.base)
    try:
        assert peer.playing.wait(20), peer.error or "the WebRTC viewer got no frame"
        stack.wait_for(lambda st: len(st["webrtc"]["sessions"]) == 1, 5)
        time.sleep(0.5)
        assert mjpeg.bytes > 0 and not mjpeg.ended.is_set()
        assert poller.codes and not poller.ended.is_set()
        started = time.monotonic()
        code = stack.stop()
        took = time.monotonic() - started
        for viewer in (mjpeg, poller, peer):
            assert viewer.ended.wait(5), viewer
    finally:
        mjpeg.client.close()
        peer.close()
    assert code == 0, stack.log()
    assert "removed what stopped services left" not in stack.log(), stack.log()
    assert "SIGKILL" not in stack.log(), stack.log()
    assert stack.leftovers() == []
    assert took <= 3.0, f"stopped in {took:.1f} s\n{stack.log()}"
    assert mjpeg.finished, (mjpeg.tail, mjpeg.error)
    assert not poller.broken and set(poller.codes) == {200}, (poller.broken, poller.codes)
    assert not peer.error and peer.state == "closed", (peer.state, peer.error)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_file_source_plays_a_file_made_here(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    clip = tmp_path / "print.mp4"
    make_clip(clip, 15)
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
    make_clip(made, 10)
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


def test_up_with_stdout_to_a_file_keeps_every_line(tmp_path: Path) -> None:
    """Pins: once up became supervisord, its own writes to a stdout redirected to a file
    (the URL line, supervisord's notices) went at its own offset, over the services' lines,
    which supervisord appends through /dev/stdout: the log read "ocket ipc://…"."""
    port = free_port()
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {
                "titanium": {
                    "cameras": [{"device": "testpattern", "resolution": "320x240"}],
                    "runtime_dir": str(tmp_path / "run"),
                    "state_dir": str(tmp_path / "state"),
                    "http": {"listen": f"127.0.0.1:{port}"},
                }
            }
        )
    )
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = subprocess.Popen(
            [TITANIUMCTL, "up", "--config", str(cfg)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "Titanium is streaming" not in log.read_text():
            assert time.monotonic() < deadline and up.poll() is None, log.read_text()
            time.sleep(0.1)
    finally:
        code = terminate(up, 30)
    text = log.read_text()
    assert code == 0, text
    lines = text.splitlines()
    assert f"Titanium is streaming. Open http://127.0.0.1:{port}/" in lines, text
    assert any(line.endswith(f"serving on http://127.0.0.1:{port}/") for line in lines), text
    assert any(line.endswith("received SIGTERM indicating exit request") for line in lines), text
    ours = ("camera cam0: ", "Titanium is streaming. ")
    dated = re.compile(r"\d{4}-\d\d-\d\d \d\d:")
    torn = [ln for ln in lines if not (dated.match(ln) or ln.startswith(ours))]
    assert not torn, text
