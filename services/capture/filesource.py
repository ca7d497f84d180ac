"""A video file as a camera (``device: "file:PATH"``), decoded with PyAV and looped.

Frames come out as I420 at the configured size, paced at the configured rate or the clip's
own, whichever is lower (like a camera that cannot go faster than its sensor), so a recorded
print can stand in for a camera in demos and tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import av
import av.error
import numpy as np

from titanium.common import formats
from titanium.services.capture.source import CapturedFrame, SourceError, StreamFormat


class FileSource:
    def __init__(self, path: str, width: int, height: int, fps: int) -> None:
        self.description = f"file:{path}"
        self.path = path
        self.width, self.height, self.fps = width, height, fps
        self.dropped = 0
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._next = 0.0
        self._rate = float(fps)  # what open() settled on

    def open(self) -> StreamFormat:
        self.close()
        try:
            self._container = av.open(self.path)
            if not self._container.streams.video:
                raise SourceError(f"{self.path} has no video stream")
            clip = float(self._container.streams.video[0].average_rate or 0)
        except (OSError, av.error.FFmpegError) as e:
            self.close()
            raise SourceError(f"cannot open {self.path}: {e}") from None
        self._frames = self._decode()
        self._next = time.monotonic()
        self._rate = min(float(self.fps), clip) if clip > 0 else float(self.fps)
        size = self.width * self.height * 3 // 2
        return StreamFormat(formats.YU12, self.width, self.height, self._rate, size)

    def _decode(self) -> Iterator[av.VideoFrame]:
        assert self._container is not None
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        while True:
            got = False
            for frame in self._container.decode(stream):
                got = True
                yield frame
            if not got:
                raise SourceError(f"{self.path} has no decodable frames")
            self._container.seek(0)  # loop

    def read_into(self, buf: memoryview, timeout: float) -> CapturedFrame:
        if self._frames is None:
            raise SourceError("file source is not open")
        try:
            frame = next(self._frames)
        except (OSError, av.error.FFmpegError) as e:
            raise SourceError(f"decoding {self.path} failed: {e}") from None
        image = frame.reformat(self.width, self.height, format="yuv420p").to_ndarray()
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
        self._next = max(self._next, now - 1.0 / self._rate) + 1.0 / self._rate
        size = self.width * self.height * 3 // 2
        np.frombuffer(buf, np.uint8, size)[:] = image.reshape(-1)
        return CapturedFrame(size, time.monotonic_ns(), time.time_ns())

    def controls(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None
