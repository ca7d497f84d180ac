"""The front door's link to the bus: its heartbeat and MJPEG viewer counts out (for the
governor's events and /status), the governor's ViewerAdmission in (which viewers are
served now), and the viewers' handlers, so that those no longer served can be ended."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import zmq
import zmq.asyncio

from titanium.common import bus
from titanium.common.bus import Publisher, Subscriber
from titanium.common.config import Config
from titanium.common.endpoints import Endpoints
from titanium.common.messages import Heartbeat, ViewerAdmission, ViewerCount
from titanium.common.priority import admitted

log = logging.getLogger("titanium.mjpeg.bus")
PERIOD = 1.0


class BusLink:
    def __init__(self, config: Config, ctx: zmq.asyncio.Context, started: float) -> None:
        endpoints = Endpoints(config.runtime_dir)
        self._started = started
        self.counts: dict[str, dict[str, int]] = {c.id: {} for c in config.cameras}
        self.min_priority = "low"
        self.reason = ""
        self._tasks: dict[asyncio.Task[Any], str] = {}  # each viewer's handler, its priority
        self.pub = Publisher(ctx, endpoints.mjpeg_pub())
        self.sub = Subscriber(ctx, [endpoints.governor_pub()], (ViewerAdmission,))

    def admits(self, priority: str) -> bool:
        return admitted(priority, self.min_priority)

    @contextlib.contextmanager
    def watching(self, camera: str, priority: str) -> Iterator[None]:
        """Count one viewer of ``camera`` for as long as the block runs; its task is
        cancelled when the governor stops serving its priority."""
        counts = self.counts.setdefault(camera, {})
        counts[priority] = counts.get(priority, 0) + 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks[task] = priority
        self._send_counts(camera)
        try:
            yield
        finally:
            if task is not None:
                self._tasks.pop(task, None)
            counts[priority] -= 1
            if not counts[priority]:
                del counts[priority]
            self._send_counts(camera)

    def _send_counts(self, camera: str) -> None:
        self.pub.publish(ViewerCount("mjpeg", camera, dict(self.counts.get(camera, {}))))

    async def run(self) -> None:
        beat = asyncio.ensure_future(self._beat())
        try:
            async for msg in self.sub:
                if isinstance(msg, ViewerAdmission) and msg.min_priority != self.min_priority:
                    log.info("serving %s-priority viewers and up: %s", msg.min_priority, msg.reason)
                    self.min_priority, self.reason = msg.min_priority, msg.reason
                    self._shed()
        finally:
            beat.cancel()

    def _shed(self) -> None:
        """End the viewers no longer served. Cancelling the handler also ends one that is
        stuck writing to a slow client, which a check between frames would never reach."""
        for task, priority in list(self._tasks.items()):
            if not self.admits(priority):
                task.cancel()

    async def _beat(self) -> None:
        while True:
            self.pub.publish(Heartbeat("mjpeg", os.getpid(), self._started, **bus.losses()))
            for camera in self.counts:
                self._send_counts(camera)
            await asyncio.sleep(PERIOD)

    def close(self) -> None:
        self.pub.close()
        self.sub.close()
