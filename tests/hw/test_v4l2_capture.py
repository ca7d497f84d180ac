"""The capture service on a real V4L2 driver: the format, size and rate it asks for are the
ones the kernel reports, frames reach the ring at the camera's rate, controls from the config
are applied, and what the camera cannot do is refused with a message saying what it can."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.hw.conftest import DEVICE, CaptureService, device_format, v4l2_ctl
from titanium.common.ring import FLAG_PLACEHOLDER
from titanium.services.capture.source import SourceConfigError
from titanium.services.capture.v4l2 import V4L2Source

WINDOW = 4.0  # seconds of frames counted in the ring


@pytest.mark.parametrize(
    ("resolution", "nominal"),
    [("640x480", 25.0), ("1280x720", 12.5)],  # vivid's top webcam rates at these sizes
)
def test_yuyv_size_and_rate_read_back_and_delivered_into_the_ring(
    start_capture: Callable[..., CaptureService], resolution: str, nominal: float
) -> None:
    width, height = map(int, resolution.split("x"))
    # Asks 25 fps at both sizes: at 720p the driver grants 12.5, and capture must take that.
    cap = start_capture(resolution=resolution, fps=25, format="YUYV")
    first, _ = cap.wait_frame(lambda f: not f.placeholder, 60, "camera frame")
    assert (first.fourcc, first.width, first.height) == ("YUYV", width, height)
    assert device_format() == ("YUYV", width, height, nominal)

    time.sleep(1.0)  # past the stream's start-up
    ring = cap.ring(first)
    seq0, t0 = ring.next_seq, time.monotonic()
    time.sleep(WINDOW)
    seq1, t1 = ring.next_seq, time.monotonic()
    rate = (seq1 - seq0) / (t1 - t0)
    assert rate >= 0.9 * nominal, f"{rate:.2f} fps into the ring, camera gives {nominal}"

    cap.drain()
    frame, _ = cap.wait_frame(lambda f: True, 5, "frame after the window")
    assert frame.ring_id == first.ring_id, "capture restarted during the window"
    info, payload = cap.read(frame)
    assert (info.fourcc, info.width, info.height) == ("YUYV", width, height)
    assert not info.flags & FLAG_PLACEHOLDER
    assert len(payload) == width * height * 2
    status = cap.wait_status(lambda s: s.online, 5, "online")
    assert status.error == ""
    assert (status.fourcc, status.width, status.height) == ("YUYV", width, height)


def test_controls_from_config_are_applied_and_read_back(
    start_capture: Callable[..., CaptureService],
) -> None:
    wanted = {"brightness": 100, "contrast": 150, "saturation": 90}
    cap = start_capture(resolution="640x480", fps=25, format="YUYV", controls=wanted)
    status = cap.wait_status(lambda s: s.online and bool(s.controls), 60, "controls")
    assert status.controls == wanted
    kernel = dict(
        line.split(": ") for line in v4l2_ctl("--get-ctrl", ",".join(wanted)).splitlines()
    )
    assert {k: int(v) for k, v in kernel.items()} == wanted


@pytest.mark.parametrize(
    ("resolution", "pixel_format", "controls", "message"),
    [
        ("640x480", "YUYV", {"focus_absolute": 10}, "no control 'focus_absolute'; it has bright"),
        ("640x480", "YUYV", {"brightness": 300}, "brightness=300 is out of range (0..255)"),
        ("1000x1000", "YUYV", {}, "cannot capture YUYV 1000x1000"),
        ("640x480", "MJPEG", {}, "does not offer MJPEG; it offers formats YUYV"),
    ],
    ids=["unknown-control", "control-range", "size", "format"],
)
def test_what_the_camera_cannot_do_is_refused_naming_what_it_offers(
    start_capture: Callable[..., CaptureService],
    resolution: str,
    pixel_format: str,
    controls: dict[str, int],
    message: str,
) -> None:
    width, height = map(int, resolution.split("x"))
    # The source itself, as the capture loop calls it...
    source = V4L2Source(DEVICE, width, height, 25, pixel_format, controls)
    with pytest.raises(SourceConfigError) as refused:
        source.open()
    source.close()
    assert message in str(refused.value)
    # ...and the service: offline, the reason in its status, the offline frame for viewers.
    cap = start_capture(resolution=resolution, fps=25, format=pixel_format, controls=controls)
    status = cap.wait_status(lambda s: bool(s.error), 60, "an error")
    assert not status.online
    assert message in status.error
    frame, _ = cap.wait_frame(lambda f: True, 5, "offline frame")
    assert frame.placeholder
    info, jpeg = cap.read(frame)
    assert info.flags & FLAG_PLACEHOLDER and info.fourcc == "MJPG" and jpeg[:2] == b"\xff\xd8"


def test_big_endian_formats_are_named_readably_in_what_the_camera_offers() -> None:
    """Regression: V4L2's big-endian flag (the fourcc's top bit) printed as junk in the list
    of offered formats ('XR1µ' for XR15-BE, and 'Y16' twice)."""
    source = V4L2Source(DEVICE, 640, 480, 25, "MJPEG", {})
    with pytest.raises(SourceConfigError) as refused:
        source.open()
    source.close()
    offered = str(refused.value)
    assert "Y16, Y16-BE" in offered and "XR15-BE" in offered
    assert "µ" not in offered
