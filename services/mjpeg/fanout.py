"""One MJPEG viewer as the feed hands it frames: written straight to its transport from the
feed's one callback per frame, never queued, skipped while its socket is still full."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from titanium.services.mjpeg.feed import JpegFrame

# aiohttp's own threshold for waiting on a drain: above it, the viewer's socket has not
# taken the last part yet, and another one would only queue behind it.
HIGH_WATER = 0x10000


class Viewer:
    def __init__(
        self, transport: asyncio.Transport, chunked: bool, served: Callable[[], bool]
    ) -> None:
        self._transport = transport
        self._chunked = chunked
        self._served = served  # still admitted by the governor
        self.after = -1  # the last frame (JpegFrame.n) written
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def offer(self, frame: JpegFrame) -> None:
        """Write ``frame`` unless this viewer has it or is still busy with an earlier one:
        a slow viewer skips frames, it never queues them or holds up the others."""
        if self.ended.done() or frame.n <= self.after:
            return
        if self._transport.is_closing() or not self._served():
            self.end()
            return
        if self._transport.get_write_buffer_size() > HIGH_WATER:
            return
        self._transport.write(frame.chunk if self._chunked else frame.part)
        self.after = frame.n

    def end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)
