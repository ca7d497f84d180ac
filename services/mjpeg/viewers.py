"""The front door on the bus: its heartbeat and MJPEG viewer counts out (for the governor's
events and /status), the governor's ViewerAdmission in (which viewers are served now)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import zmq
import zmq.asyncio

from titanium.common.config import Config
from titanium.common.endpoints import Endpoints, unlink_ipc
from titanium.common.messages import (
    Heartbeat,
    Message,
    MessageError,
    ViewerAdmission,
    ViewerCount,
    decode,
    encode,
)
from titanium.common.priority import admitted

log = logging.getLogger("titanium.mjpeg.viewers")
PERIOD = 1.0


class Viewers:
    def __init__(self, config: Config, ctx: zmq.asyncio.Context, started: float) -> None:
        endpoints = Endpoints(config.runtime_dir)
        self._endpoint = endpoints.mjpeg_pub()
        self._started = started
        self.counts: dict[str, dict[str, int]] = {c.id: {} for c in config.cameras}
        self.min_priority = "low"
        self.reason = ""
        self._tasks: dict[asyncio.Task[Any], str] = {}  # each viewer's handler, its priority
        self._pub = ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.bind(self._endpoint)
        self._sub = ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.SUBSCRIBE, ViewerAdmission.TOPIC)
        self._sub.connect(endpoints.governor_pub())

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
        self._send(ViewerCount("mjpeg", camera, dict(self.counts.get(camera, {}))))

    def _send(self, msg: Message) -> None:
        try:
            self._pub.send_multipart(encode(msg), flags=zmq.NOBLOCK)
        except zmq.Again:
            pass

    async def run(self) -> None:
        beat = asyncio.ensure_future(self._beat())
        try:
            while True:
                frames = await self._sub.recv_multipart()
                try:
                    msg = decode(frames)
                except MessageError as e:
                    log.warning("dropped a bad message: %s", e)
                    continue
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
            self._send(Heartbeat("mjpeg", os.getpid(), self._started))
            for camera in self.counts:
                self._send_counts(camera)
            await asyncio.sleep(PERIOD)

    def close(self) -> None:
        self._pub.close()
        self._sub.close()
        unlink_ipc(self._endpoint)
