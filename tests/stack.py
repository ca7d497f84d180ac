"""A real Titanium: ``titaniumctl up`` as a subprocess on a config written from its arguments,
a private runtime directory and a port of its own. The one way integration tests, the tests
in the vivid VM and the benchmarks start a whole stack.

Ready means /status answers with every service running (not titaniumctl's "streaming"
line: under emulation the stack can take longer than titaniumctl's own readiness wait, after
which it keeps running silently). Its output is kept for failure messages.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tests.integration import netns as namespaces
from titanium.common.endpoints import Endpoints
from titanium.common.ring import SHM_DIR
from titanium.common.tokens import Tokens

TITANIUMCTL = str(Path(sys.executable).parent / "titaniumctl")
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 40.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate(proc: subprocess.Popen[Any], timeout: float) -> int:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def all_running(doc: dict[str, Any]) -> bool:
    services = doc.get("services") or {}
    return bool(services) and all(s["state"] == "running" for s in services.values())


class Child:
    """A subprocess whose output (stdout and stderr together) is kept for failure messages."""

    def __init__(self, argv: list[str], keep: int = 400, **popen: Any) -> None:
        self.output: deque[str] = deque(maxlen=keep)
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip())

    def log(self) -> str:
        return "\n".join(self.output)


class Stack(Child):
    """One running ``titaniumctl up``.

    ``cameras`` go into ``titanium.cameras``; other keyword arguments are further
    ``titanium`` keys (``streaming={…}``, ``governor={…}``) and override the defaults here
    (ICE on loopback only: no test traffic to this machine's LAN address); ``http={…}`` keys
    join the listen address. With ``http={"auth": "token"}``, the stack's own requests
    (readiness, :meth:`get`, :meth:`status`) carry :attr:`token`, an admin token for every
    camera made in its state directory before it starts. With ``netns``, the stack runs in
    that network namespace (``ip netns exec``) and the stack's own requests are made from it.
    """

    def __init__(
        self,
        workdir: Path,
        cameras: list[dict[str, Any]],
        *,
        port: int | None = None,
        mirage: dict[str, Any] | None = None,
        ready_timeout: float = READY_TIMEOUT,
        netns: str | None = None,
        **titanium: Any,
    ) -> None:
        self.netns = netns
        self.port = port or free_port()
        self.runtime_dir = workdir / "run"
        self.state_dir = workdir / "state"
        self.config_path = workdir / "titanium.json"
        http = {"listen": f"127.0.0.1:{self.port}", **titanium.pop("http", {})}
        self.token: str | None = None
        if http.get("auth") == "token":
            self.token = Tokens(self.state_dir).create("tests/stack.py", rights="admin")[0]
        doc = {
            "titanium": {
                "cameras": cameras,
                "runtime_dir": str(self.runtime_dir),
                "state_dir": str(self.state_dir),
                "http": http,
                "webrtc": {"ice_addresses": ["127.0.0.1"]},
                **titanium,
            },
            **({"mirage": mirage} if mirage else {}),
        }
        self.config_path.write_text(json.dumps(doc))
        self.base = f"http://127.0.0.1:{self.port}"
        argv = [TITANIUMCTL, "up", "--config", str(self.config_path)]
        if netns is not None:  # ip netns exec execs titaniumctl: the PID stays titaniumctl's
            argv = ["ip", "netns", "exec", netns, *argv]
        # In a session of its own: only we stop it.
        super().__init__(argv, start_new_session=True)
        try:
            self.wait_for(all_running, ready_timeout, "every service running")
        except BaseException:
            self.stop()
            raise

    def url(self, path: str) -> str:
        return self.base + path

    def get(self, path: str, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url(path))
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        inside = namespaces.inside(self.netns) if self.netns else contextlib.nullcontext()
        try:
            with inside, urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def status(self) -> dict[str, Any]:
        code, _, body = self.get("/status")
        assert code == 200, f"/status answered {code}"
        doc: dict[str, Any] = json.loads(body)
        return doc

    def camera(self, camera: str | None = None) -> dict[str, Any]:
        """One camera's part of /status: ``camera``, or the first."""
        cams = self.status()["cameras"]
        cam: dict[str, Any] = cams[camera] if camera else next(iter(cams.values()))
        return cam

    def wait_for(
        self, check: Callable[[dict[str, Any]], bool], timeout: float = 10, what: str = ""
    ) -> float:
        """Poll /status until ``check`` passes; returns when (monotonic)."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                last = self.status()
            except (OSError, AssertionError, ValueError):
                last = None  # not listening yet, or between restarts
            if last is not None and check(last):
                return time.monotonic()
            time.sleep(0.1)
        raise AssertionError(
            f"/status never showed {what or 'the condition'} in {timeout} s; last {last}\n"
            + self.log()
        )

    def leftovers(self) -> list[str]:
        endpoints = Endpoints(self.runtime_dir)
        return [p.name for p in SHM_DIR.glob(endpoints.shm_glob())] + [
            p.name for p in endpoints.ipc_files()
        ]

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait; past ``timeout``, kill titaniumctl and everything under it.
        Returns titaniumctl's exit code (None when it had to be killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        try:
            tree = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for p in [*tree, psutil.Process(self.proc.pid)]:
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
            self.proc.wait()
            return None
