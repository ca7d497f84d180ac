"""The whole stack on a real V4L2 driver, read from this machine: the vivid VM
(tools/vm/vivid_vm.py) runs ``titaniumctl up`` on its /dev/video0 and forwards the guest's
port 8080 to a loopback port here, through which /status, /snapshot and /stream are read.

Skipped where QEMU or the VM image is missing; ``./titanium.sh test`` builds the image first.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import simplejpeg

from tests.integration.mjpeg_client import MjpegClient
from tests.stack import Child, free_port
from tools.vm import vivid_vm

BOOT_AND_START = 240.0  # boot (~25 s) and the stack's start (~30 s) under emulation, with room


def _status(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
            doc: dict[str, Any] = json.load(r)
            return doc
    except (OSError, ValueError):  # slirp takes the connection before the guest listens
        return None


class VividVM(Child):
    """``vivid_vm.py run --forward PORT`` in the background, its console kept for failures."""

    def __init__(self, command: str) -> None:
        self.port = free_port()
        super().__init__(
            [sys.executable, vivid_vm.__file__, "run", "--forward", str(self.port),
             "--timeout", "600", "--", "sh", "-c", command],
            keep=200,
            start_new_session=True,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # vivid_vm.py kills QEMU on its way out
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def vm_stack() -> Iterator[VividVM]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    if not (vivid_vm.image_dir() / "initrd.cpio").exists():
        pytest.skip("the vivid VM image is not built: python tools/vm/vivid_vm.py build")
    config = {
        "titanium": {
            "runtime_dir": "/tmp/titanium",
            "http": {"listen": "0.0.0.0:8080"},
            # 10 fps: see FPS in tests/hw/test_stack.py (JPEG under emulation is slow).
            "cameras": [{"device": "/dev/video0", "resolution": "640x480", "fps": 10}],
            "streaming": {"print_protection": False},  # as in tests/hw/conftest.py
        }
    }
    vm = VividVM(
        f"printf '%s' {shlex.quote(json.dumps(config))} > /tmp/titanium.json"
        " && exec titaniumctl up --config /tmp/titanium.json"
    )
    try:
        yield vm
    finally:
        vm.stop()


def test_stack_in_the_vm_serves_this_machine_through_the_port_forward(vm_stack: VividVM) -> None:
    port = vm_stack.port
    deadline = time.monotonic() + BOOT_AND_START
    cam: dict[str, Any] = {}
    while time.monotonic() < deadline and vm_stack.proc.poll() is None:
        doc = _status(port)
        cam = doc["cameras"]["cam0"] if doc else {}
        if cam.get("online") and cam.get("frames", 0) > 0:
            break
        time.sleep(1)
    else:
        raise AssertionError(f"the VM's stack never had its camera online:\n{vm_stack.log()}")
    assert cam["source"] == "v4l2:/dev/video0"
    # auto picks YUYV: vivid has no MJPEG
    assert (cam["format"], cam["width"], cam["height"]) == ("YUYV", 640, 480)

    snapshot = b""
    for _ in range(50):  # the first snapshots may miss while the front door warms up
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/snapshot", timeout=10) as r:
                snapshot = r.read()
                break
        except urllib.error.HTTPError as e:
            assert e.code == 503, e
            time.sleep(0.2)
    assert simplejpeg.decode_jpeg_header(snapshot)[:2] == (480, 640)

    viewer = MjpegClient(port)
    try:
        assert viewer.headers["content-type"].startswith("multipart/x-mixed-replace")
        started = time.monotonic()
        for _ in range(10):
            _, jpeg = viewer.next_part()
            assert simplejpeg.decode_jpeg_header(jpeg)[:2] == (480, 640)
        assert time.monotonic() - started < 30
    finally:
        viewer.close()
