"""A camera that fails or goes away, made so by vivid's fault injectors: viewers get the
offline frame within 1 s and capture comes back by itself once the camera does.

What vivid really does (Linux 6.1): its ``disconnect`` control unregisters the node the way a
USB unplug does: the /dev/video0 file stays, every call on an open handle fails with ENODEV,
poll reports an error, new opens fail with ENODEV; when the last open handle is closed, vivid
registers the node again, as a camera plugged back in. ``inject_fatal_streaming_error`` marks
the buffer queue as failed: DQBUF returns EIO until streaming is restarted.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

import pytest
import simplejpeg

from tests.hw.conftest import DEVICE, CaptureService, v4l2_ctl
from titanium.common.ring import FLAG_PLACEHOLDER
from titanium.services.capture.loop import BACKOFF_MAX

CAMERA = {"resolution": "640x480", "fps": 25, "format": "YUYV"}


def _streaming(cap: CaptureService) -> None:
    cap.wait_frame(lambda f: not f.placeholder, 60, "camera frame")
    cap.drain()


def _offline_frame_within_1s(cap: CaptureService, since: float) -> None:
    frame, arrived = cap.wait_frame(lambda f: f.placeholder, 5, "offline frame")
    assert arrived - since < 1.0, f"offline frame after {arrived - since:.2f} s"
    info, jpeg = cap.read(frame)
    assert info.flags & FLAG_PLACEHOLDER and info.fourcc == "MJPG"
    height, width, _, _ = simplejpeg.decode_jpeg_header(jpeg)
    assert (width, height) == (640, 480)


@pytest.mark.parametrize("fault", ["disconnect", "inject_fatal_streaming_error"])
def test_fault_shows_the_offline_frame_within_1s_and_capture_resumes(
    start_capture: Callable[..., CaptureService], fault: str
) -> None:
    cap = start_capture(**CAMERA)
    _streaming(cap)
    since = time.monotonic()
    v4l2_ctl("-c", f"{fault}=1")
    _offline_frame_within_1s(cap, since)
    status = cap.wait_status(lambda s: not s.online, 2, "offline")
    assert status.error
    # Capture closed the failed handle: vivid is back (see the module docstring).
    frame, _ = cap.wait_frame(lambda f: not f.placeholder, 10, "camera frame after the fault")
    assert (frame.fourcc, frame.width, frame.height) == ("YUYV", 640, 480)
    cap.wait_status(lambda s: s.online and not s.error, 5, "online again")


def test_unplugged_camera_shows_the_offline_frame_until_it_is_back(
    start_capture: Callable[..., CaptureService],
) -> None:
    """Another open handle keeps vivid "unplugged" after capture lets go, for as long as the
    test holds it: capture must keep the offline frame up and retry until the camera is back."""
    cap = start_capture(**CAMERA)
    _streaming(cap)
    holder = os.open(DEVICE, os.O_RDWR)
    try:
        since = time.monotonic()
        v4l2_ctl("-c", "disconnect=1")
        _offline_frame_within_1s(cap, since)
        status = cap.wait_status(lambda s: not s.online, 2, "offline")
        assert "device gone" in status.error, status.error
        outage_end = time.monotonic() + 3.0
        while time.monotonic() < outage_end:  # still offline, the frame refreshed
            frame, _ = cap.wait_frame(lambda f: True, 1.5, "offline frame refresh")
            assert frame.placeholder
    finally:
        os.close(holder)
    back = time.monotonic()
    _, arrived = cap.wait_frame(lambda f: not f.placeholder, BACKOFF_MAX + 5, "camera frame")
    assert arrived - back < BACKOFF_MAX + 2, "capture retried too seldom"


def test_camera_plugged_in_after_start_is_picked_up(
    start_capture: Callable[..., CaptureService],
) -> None:
    """The node does not exist when capture starts (vivid unloaded), then appears."""
    subprocess.run(["modprobe", "-r", "vivid"], check=True, timeout=30)
    try:
        assert not os.path.exists(DEVICE)
        cap = start_capture(**CAMERA)
        status = cap.wait_status(lambda s: bool(s.error), 60, "an error")
        assert not status.online and "no such device" in status.error, status.error
        frame, _ = cap.wait_frame(lambda f: True, 5, "offline frame")
        assert frame.placeholder
    finally:
        subprocess.run(["modprobe", "vivid"], check=True, timeout=30)  # /etc/modprobe.d options
    frame, _ = cap.wait_frame(lambda f: not f.placeholder, BACKOFF_MAX + 10, "camera frame")
    assert (frame.fourcc, frame.width, frame.height) == ("YUYV", 640, 480)
