"""A running stack (tests/stack.py) as the benchmarks measure it: its services' processes by
name, every process under it for the check that a stop leaves none behind, and the camera's
once-a-second status that measured windows are aligned on."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.procstats import Proc, descendants, find_services
from tests.stack import Stack

TICK_TIMEOUT = 3.0  # capture publishes its status once a second
STOP_TIMEOUT = 45.0  # services get 10 s each from supervisord


class Measured:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.procs: dict[str, Proc] = find_services(stack.proc.pid, stack.status())
        self.tree = [Proc.of(p, str(p)) for p in descendants(stack.proc.pid)]

    def tail(self) -> str:
        return "\n".join(f"    | {line}" for line in list(self.stack.output)[-40:])

    def tick(self) -> dict[str, Any]:
        """The camera's status right after capture publishes a new one (once a second), so
        its frame count is current to within a poll."""
        first = self.stack.camera()["frames"]
        deadline = time.monotonic() + TICK_TIMEOUT
        while time.monotonic() < deadline:
            time.sleep(0.025)
            cam = self.stack.camera()
            if cam["frames"] != first:
                return cam
        raise RuntimeError(f"capture's frame count stayed at {first} for {TICK_TIMEOUT} s")

    def stop(self) -> tuple[int | None, list[str]]:
        """SIGTERM, wait; the exit code and any process of ours still alive after."""
        code = self.stack.stop(STOP_TIMEOUT)
        time.sleep(0.2)
        left = [f"pid {p.pid}" for p in self.tree if p.alive()]
        for p in self.tree:
            p.kill()
        return code, left
