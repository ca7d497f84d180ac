"""A real Titanium for integration tests: ``titaniumctl up`` as a subprocess on a temporary
runtime directory and a free port, with helpers to read its HTTP front door."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser import Browser, find_chromium
from titanium.common.endpoints import Endpoints
from titanium.common.ring import SHM_DIR

TITANIUMCTL = str(Path(sys.executable).parent / "titaniumctl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """One running ``titaniumctl up``; its output is kept for failure messages."""

    def __init__(
        self,
        tmp: Path,
        cameras: list[dict[str, Any]],
        mirage: dict[str, Any] | None = None,
        **titanium: Any,
    ) -> None:
        self.port = free_port()
        self.runtime_dir = tmp / "run"
        self.config_path = tmp / "titanium.json"
        doc = {
            "titanium": {
                "cameras": cameras,
                "runtime_dir": str(self.runtime_dir),
                "http": {"listen": f"127.0.0.1:{self.port}"},
                # ICE on loopback only: no test traffic to this machine's LAN address.
                "webrtc": {"ice_addresses": ["127.0.0.1"]},
                **titanium,
            },
            **({"mirage": mirage} if mirage else {}),
        }
        self.config_path.write_text(json.dumps(doc))
        self.base = f"http://127.0.0.1:{self.port}"
        self.output: deque[str] = deque(maxlen=400)
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [TITANIUMCTL, "up", "--config", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(40):
            self.stop()
            raise AssertionError("titaniumctl up did not print its URL:\n" + self.log())

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            if line.startswith("Titanium is streaming. Open"):
                self.ready.set()

    def log(self) -> str:
        return "\n".join(self.output)

    def url(self, path: str) -> str:
        return self.base + path

    def get(self, path: str, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def status(self) -> dict[str, Any]:
        code, _, body = self.get("/status")
        assert code == 200
        doc: dict[str, Any] = json.loads(body)
        return doc

    def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.status()):
                return
            time.sleep(0.1)
        raise AssertionError(f"condition not met in {timeout} s; status {self.status()}")

    def leftovers(self) -> list[str]:
        endpoints = Endpoints(self.runtime_dir)
        return [p.name for p in SHM_DIR.glob(endpoints.shm_glob())] + [
            p.name for p in endpoints.ipc_files()
        ]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(os.getpgid(self.proc.pid), signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(cameras: list[dict[str, Any]] | None = None, **titanium: Any) -> Stack:
        sub = tmp_path / f"stack{len(stacks)}"
        sub.mkdir()
        stack = Stack(
            sub, cameras or [{"device": "testpattern", "resolution": "640x480"}], **titanium
        )
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless Chromium (see browser.py): ``browser.open(url)`` gives a Page with
    ``eval(js, timeout)``, ``wait_for(js, timeout)``, ``screenshot(path)`` and
    ``diagnostics()``. Chromium is stopped after the test however it ends; the test is
    skipped when Debian's ``chromium`` is not installed."""
    if find_chromium() is None:
        pytest.skip("browser tests need Debian's chromium: apt-get install chromium")
    with Browser.launch() as b:
        yield b
