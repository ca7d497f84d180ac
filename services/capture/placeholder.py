"""The "camera offline" frame: what viewers and snapshots get while the camera is away,
instead of an error page; and the "stream paused" frame the governor's pause shows. A
JPEG, carrying the timecode strip like every test frame."""

from __future__ import annotations

import numpy as np
import simplejpeg

from titanium.common.timecode import draw_timecode
from titanium.services.capture.glyphs import text_mask


class Placeholder:
    """Draws the offline frame once per size; only the timecode changes per call."""

    def __init__(
        self,
        width: int,
        height: int,
        title: str = "CAMERA OFFLINE",
        subtitle: str = "RECONNECTING",
    ) -> None:
        self.width, self.height = width, height
        self._y = np.full((height, width), 40, np.uint8)
        self._u = np.full((height // 2, width // 2), 128, np.uint8)
        self._v = np.full((height // 2, width // 2), 128, np.uint8)
        self._stamp(title, max(1, width // 110), 0.45, 235)
        self._stamp(subtitle, max(1, width // 220), 0.62, 150)

    def _stamp(self, text: str, scale: int, y_frac: float, level: int) -> None:
        mask = text_mask(text, scale)[: self.height, : self.width]
        mh, mw = mask.shape
        x0 = max(0, (self.width - mw) // 2)
        y0 = max(0, min(self.height - mh, int(self.height * y_frac) - mh // 2))
        self._y[y0 : y0 + mh, x0 : x0 + mw][mask] = level

    def jpeg(self, wall_time: float) -> bytes:
        draw_timecode(self._y, wall_time)
        return bytes(simplejpeg.encode_jpeg_yuv_planes(self._y, self._u, self._v, quality=80))
