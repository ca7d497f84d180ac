"""Source frames from the capture ring into the one yuv420p picture an encoder is fed.

No per-pixel Python and no allocation per frame where it can be avoided: one
``av.VideoFrame`` is made per size and its planes are filled through numpy views
(a fresh ``from_ndarray`` per frame costs 0.3–0.65 ms at 720p–1080p). Plane rows
may be padded (``line_size`` > width, e.g. 1366 wide → 1376), so every copy goes through
a (height, line_size)[:, :width] view.
"""

from __future__ import annotations

from typing import cast

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext
from av.video.reformatter import ColorRange, VideoReformatter

from titanium.common import formats
from titanium.services.encoder.backend import FrameError, SourceFrame


def plane_views(frame: av.VideoFrame) -> list[np.ndarray]:
    """Writable 2-D numpy views of a planar frame's planes, without their row padding."""
    return [
        np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width]
        for p in frame.planes
    ]


class FrameLoader:
    """Fills a reused yuv420p picture from I420, NV12, YUYV or MJPEG source frames.

    ``full_range`` of the result follows the source: JPEG samples are full range and are
    copied as they are (scaling them to video range would be a per-pixel pass), so the
    encoder must flag the stream full range while it carries them.
    """

    def __init__(self) -> None:
        self._pic: av.VideoFrame | None = None
        self._planes: list[np.ndarray] = []
        self._yuyv: av.VideoFrame | None = None
        self._yuyv_view = np.empty((0, 0), np.uint8)
        # One swscale context, reused; threads=1 because its default (auto) costs 40–70 %
        # more CPU for no gain at camera sizes.
        self._sws = VideoReformatter()
        self._jpeg: VideoCodecContext | None = None

    def load(self, src: SourceFrame) -> tuple[av.VideoFrame, bool]:
        """(the picture holding ``src``, full_range). The picture is reused: it is valid
        until the next call."""
        fourcc, w, h = src.fourcc, src.width, src.height
        if fourcc == formats.MJPG:
            return self._from_jpeg(src.data), True
        if fourcc not in formats.RAW:
            raise FrameError(f"cannot encode {fourcc!r} frames")
        try:
            views = formats.planes(src.data, fourcc, w, h)
        except ValueError as e:
            raise FrameError(str(e)) from None
        if fourcc == formats.YUYV:
            return self._from_yuyv(views[0], w, h), False
        y, u, v = self._target(w, h)
        y[:] = views[0]
        if fourcc == formats.YU12:
            u[:] = views[1]
            v[:] = views[2]
        else:  # NV12
            u[:] = views[1][:, 0::2]
            v[:] = views[1][:, 1::2]
        assert self._pic is not None
        return self._pic, False

    def _target(self, w: int, h: int) -> list[np.ndarray]:
        if self._pic is None or (self._pic.width, self._pic.height) != (w, h):
            self._pic = av.VideoFrame(w, h, "yuv420p")
            self._planes = plane_views(self._pic)
        return self._planes

    def _from_yuyv(self, packed: np.ndarray, w: int, h: int) -> av.VideoFrame:
        # swscale's packed 4:2:2 → planar 4:2:0 (0.3 ms at 720p with the copy in) beats
        # numpy slicing (0.5 ms), but only with equal colour ranges on both sides: when they
        # differ it leaves its fast path (1.0 ms). V4L2's YUYV is video range.
        if self._yuyv is None or (self._yuyv.width, self._yuyv.height) != (w, h):
            self._yuyv = av.VideoFrame(w, h, "yuyv422")
            plane = self._yuyv.planes[0]  # packed: its width counts pixels, not bytes
            rows = np.frombuffer(memoryview(plane), np.uint8).reshape(h, plane.line_size)
            self._yuyv_view = rows[:, : w * 2]
        self._yuyv_view[:] = packed
        return self._sws.reformat(
            self._yuyv,
            format="yuv420p",
            src_color_range=ColorRange.MPEG,
            dst_color_range=ColorRange.MPEG,
            threads=1,
        )

    def _from_jpeg(self, data: memoryview) -> av.VideoFrame:
        if self._jpeg is None:
            self._jpeg = cast(VideoCodecContext, av.CodecContext.create("mjpeg", "r"))
            # Frame threading would hold frames back (latency) for no gain on one stream.
            self._jpeg.thread_count = 1
        try:
            # Packet copies the slot, so the ring may move on while the decoder works.
            frames = self._jpeg.decode(av.Packet(data))  # type: ignore[arg-type]
        except av.FFmpegError as e:
            raise FrameError(f"undecodable JPEG: {e}") from None
        if not frames:
            raise FrameError("the JPEG decoder returned no picture")
        dec = frames[-1]
        fmt = dec.format.name
        if fmt not in ("yuvj420p", "yuvj422p", "yuv420p", "yuv422p"):
            # Rare camera layouts (4:4:4, grey): let swscale do it, same range both sides.
            return self._sws.reformat(
                dec,
                format="yuv420p",
                src_color_range=ColorRange.JPEG,
                dst_color_range=ColorRange.JPEG,
                threads=1,
            )
        y, u, v = self._target(dec.width, dec.height)
        sy, su, sv = plane_views(dec)
        y[:] = sy
        # 4:2:2 → 4:2:0 by taking every other chroma row: ~0.1 ms at 720p, against
        # ~0.8 ms for swscale's yuvj422p → yuv420p.
        step = 2 if fmt.endswith("422p") else 1
        u[:] = su[::step]
        v[:] = sv[::step]
        assert self._pic is not None
        return self._pic
