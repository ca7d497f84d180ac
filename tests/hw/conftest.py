"""Tests against a real V4L2 driver: the kernel's ``vivid`` webcam, at /dev/video0 in the VM
that ``tools/vm/vivid_vm.py`` boots. Anywhere else every test here is skipped, with the reason.

Run them:  python tools/vm/vivid_vm.py run -- /opt/venv/bin/python -m pytest -q tests/hw
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.stack import Stack
from titanium.common.endpoints import Endpoints
from titanium.common.messages import CameraStatus, FrameReady, decode
from titanium.common.ring import RingReader, SlotInfo

DEVICE = "/dev/video0"
HERE = Path(__file__).resolve().parent
RUN_HINT = "python tools/vm/vivid_vm.py run -- /opt/venv/bin/python -m pytest -q tests/hw"
# Python services start slowly under emulation (no KVM): a few seconds each, one vCPU.
START_TIMEOUT = 60.0


def _why_skip() -> str | None:
    if not Path(DEVICE).exists():
        return f"no V4L2 device at {DEVICE}; these tests run in the vivid VM: {RUN_HINT}"
    from linuxpy.video.device import Device

    try:
        with Device(DEVICE, read_write=False) as device:
            driver = device.info.driver
    except Exception as e:
        return f"{DEVICE} cannot be opened ({e}); these tests run in the vivid VM: {RUN_HINT}"
    if driver != "vivid":
        return f"{DEVICE} is a {driver!r} device, not vivid; these tests drive vivid's controls"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if HERE in item.path.parents]
    reason = _why_skip() if ours else None
    for item in ours:
        item.add_marker(pytest.mark.hw)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def v4l2_ctl(*args: str) -> str:
    """``v4l2-ctl -d /dev/video0 ARGS``: what the kernel says, independent of Titanium."""
    out = subprocess.run(
        ["v4l2-ctl", "-d", DEVICE, *args], capture_output=True, text=True, timeout=30
    )
    if out.returncode:
        raise AssertionError(f"v4l2-ctl {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def device_format() -> tuple[str, int, int, float]:
    """The capture format and frame rate set in the driver now: (fourcc, width, height, fps)."""
    fields = {}
    for line in (v4l2_ctl("--get-fmt-video") + v4l2_ctl("--get-parm")).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    width, height = map(int, fields["Width/Height"].split("/"))
    fourcc = fields["Pixel Format"].split("'")[1]
    fps = float(fields["Frames per second"].split()[0])
    return fourcc, width, height, fps


class CaptureService:
    """``python -m titanium.services.capture`` on one camera, its bus and ring read the way
    the front door reads them."""

    def __init__(self, tmp: Path, camera: dict[str, Any]) -> None:
        runtime = tmp / "run"
        runtime.mkdir()
        config = tmp / "titanium.json"
        doc = {"titanium": {"runtime_dir": str(runtime), "cameras": [{"id": "cam0", **camera}]}}
        config.write_text(json.dumps(doc))
        self.log_path = tmp / "capture.log"
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.connect(Endpoints(runtime).capture_pub("cam0"))  # zmq retries until bound
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "titanium.services.capture", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.status: CameraStatus | None = None
        self._statuses: list[CameraStatus] = []  # in order, from the last drain() on
        self._ring: RingReader | None = None
        self._ring_id = 0

    def log(self) -> str:
        return self.log_path.read_text()[-3000:]

    def _receive(self, until: float) -> FrameReady | None:
        """The next FrameReady before ``until`` (monotonic), keeping the newest status."""
        while (left := until - time.monotonic()) > 0:
            if not self.sub.poll(max(1, int(left * 1000))):
                break
            msg = decode(self.sub.recv_multipart())
            if isinstance(msg, CameraStatus):
                self.status = msg
                self._statuses.append(msg)
            elif isinstance(msg, FrameReady):
                return msg
        return None

    def wait_frame(
        self, check: Callable[[FrameReady], bool], timeout: float, what: str
    ) -> tuple[FrameReady, float]:
        """The first FrameReady that passes ``check`` and when it arrived (monotonic)."""
        until = time.monotonic() + timeout
        while (frame := self._receive(until)) is not None:
            if check(frame):
                return frame, time.monotonic()
        raise AssertionError(
            f"no {what} within {timeout} s; status {self.status}\ncapture log:\n{self.log()}"
        )

    def wait_status(
        self, check: Callable[[CameraStatus], bool], timeout: float, what: str
    ) -> CameraStatus:
        """The first status since the last one a wait returned (or the last drain) that
        passes ``check``: capture publishes a status at once when the camera comes back, so
        a short outage may already be over by the time a test looks."""
        until = time.monotonic() + timeout
        while True:
            while self._statuses:
                status = self._statuses.pop(0)
                if check(status):
                    return status
            if time.monotonic() >= until:
                break
            self._receive(min(until, time.monotonic() + 0.2))
        raise AssertionError(
            f"status never showed {what} in {timeout} s; last {self.status}\n"
            f"capture log:\n{self.log()}"
        )

    def drain(self) -> None:
        """Forget the messages queued so far: what follows is what happens from now on."""
        while self.sub.poll(0):
            msg = decode(self.sub.recv_multipart())
            if isinstance(msg, CameraStatus):
                self.status = msg
        self._statuses.clear()

    def ring(self, frame: FrameReady) -> RingReader:
        """The ring ``frame`` is in (capture makes a new one when frames outgrow its slots)."""
        if self._ring is None or self._ring_id != frame.ring_id:
            if self._ring is not None:
                self._ring.close()
            self._ring, self._ring_id = RingReader.attach(frame.ring), frame.ring_id
        return self._ring

    def read(self, frame: FrameReady) -> tuple[SlotInfo, bytes]:
        got = self.ring(frame).read(frame.slot, frame.seq)
        assert got is not None, f"slot {frame.slot} was overwritten before it could be read"
        return got

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._ring is not None:
            self._ring.close()
        self.sub.close()
        self.ctx.term()


@pytest.fixture
def start_capture(tmp_path: Path) -> Iterator[Callable[..., CaptureService]]:
    """Start the capture service on a camera config (``device`` defaults to /dev/video0)."""
    started: list[CaptureService] = []

    def start(**camera: Any) -> CaptureService:
        sub = tmp_path / f"capture{len(started)}"
        sub.mkdir()
        service = CaptureService(sub, {"device": DEVICE, **camera})
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def start_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def start(**camera: Any) -> Stack:
        stack = Stack(
            tmp_path,
            [{"id": "cam0", "device": DEVICE, **camera}],
            port=8080,  # the port the host forwards into the VM
            ready_timeout=START_TIMEOUT,
            # The emulated CPU is always busy: keep the governor from stepping the camera
            # down mid-test (it has its own tests).
            streaming={"print_protection": False},
        )
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()
