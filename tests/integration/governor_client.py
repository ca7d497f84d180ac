"""Helpers for governor tests: its control socket as Hydrogen uses it, its events, and the
governor process on its own (no other service) for tests that need only the socket."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from tests.stack import Child, terminate
from titanium.common.endpoints import Endpoints
from titanium.common.messages import GovernorEvent, MessageError, decode_as
from titanium.common.rpc import RpcClient


def call(endpoint: str, cmd: str, timeout: float = 5.0, **args: Any) -> Any:
    """One request on the control socket; raises RpcError on an error reply."""

    async def ask() -> Any:
        ctx = zmq.asyncio.Context()
        client = RpcClient(ctx, endpoint)
        try:
            return await client.call(cmd, timeout=timeout, **args)
        finally:
            client.close()
            ctx.term()

    return asyncio.run(ask())


class Events:
    """The governor's events, collected in the background from the moment it is made."""

    def __init__(self, endpoint: str) -> None:
        self.seen: list[GovernorEvent] = []
        self._ctx = zmq.Context()
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.SUBSCRIBE, GovernorEvent.TOPIC)
        self._sub.connect(endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._sub.poll(100):
                try:
                    self.seen.append(decode_as(GovernorEvent, self._sub.recv_multipart()))
                except MessageError:
                    continue

    def wait(
        self, check: Callable[[GovernorEvent], bool], timeout: float, after: int = 0
    ) -> GovernorEvent:
        """The first event from ``seen[after]`` on that passes ``check``, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.seen[after:]:
                if check(ev):
                    return ev
            time.sleep(0.02)
        raise AssertionError(f"no such event in {timeout} s; seen: {self.seen}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sub.close(0)
        self._ctx.term()


class GovernorProcess(Child):
    """``python -m titanium.services.governor`` alone on a temporary runtime and state dir."""

    def __init__(
        self,
        tmp: Path,
        governor: dict[str, Any],
        cameras: list[dict[str, Any]] | None = None,
        **titanium: Any,
    ) -> None:
        self.endpoints = Endpoints(tmp / "run")
        # Its own token database: the default (/var/lib/titanium as root) is the machine's.
        self.state_dir = Path(titanium.pop("state_dir", tmp / "state"))
        config = tmp / "titanium.json"
        cams = cameras or [{"device": "testpattern", "resolution": "640x480"}]
        doc = {
            "titanium": {
                "cameras": cams,
                "runtime_dir": str(self.endpoints.runtime_dir),
                "state_dir": str(self.state_dir),
                "governor": {"psutil_sensors": False, **governor},
                **titanium,
            }
        }
        config.write_text(json.dumps(doc))
        super().__init__(
            [sys.executable, "-m", "titanium.services.governor", "--config", str(config)]
        )
        self.rpc = self.endpoints.governor_rpc()
        deadline = time.monotonic() + 20
        while not (self.endpoints.runtime_dir / "governor.rpc").exists():
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, "no control socket:\n" + self.log()
            time.sleep(0.05)

    def call(self, cmd: str, **args: Any) -> Any:
        return call(self.rpc, cmd, **args)

    def stop(self) -> int:
        return terminate(self.proc, 10)
