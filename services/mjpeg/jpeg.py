"""The front door's JPEG work: encode raw frames from shared memory without per-pixel
Python, and clean camera JPEGs for browser workers."""

from __future__ import annotations

import numpy as np
import simplejpeg

from titanium.common import formats


def encode_raw(buf: memoryview, fourcc: str, width: int, height: int, quality: int) -> bytes:
    """JPEG of a raw frame held in ``buf`` (I420, NV12 or YUYV), via libjpeg-turbo.

    I420 planes are encoded in place; NV12 and YUYV chroma is de-interleaved with numpy
    slicing (YUYV stays 4:2:2, so no chroma is thrown away).
    """
    if fourcc not in formats.RAW:
        raise ValueError(f"cannot JPEG-encode {fourcc!r} frames")
    views = formats.planes(buf, fourcc, width, height)
    if fourcc == formats.YU12:
        y, u, v = views
    elif fourcc == formats.NV12:
        y, uv = views
        u, v = np.ascontiguousarray(uv[:, 0::2]), np.ascontiguousarray(uv[:, 1::2])
    else:
        (packed,) = views
        y = np.ascontiguousarray(packed[:, 0::2])
        u = np.ascontiguousarray(packed[:, 1::4])
        v = np.ascontiguousarray(packed[:, 3::4])
    return bytes(simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=quality, fastdct=True))


def strip_app_segments(jpeg: bytes) -> bytes:
    """``jpeg`` without APP1–APP15 and COM segments (EXIF, embedded thumbnails).

    Mainsail's MJPEG worker finds the first FF D8 and copies Content-Length bytes from
    there: an embedded thumbnail carries its own FF D8 and breaks it. Returns ``jpeg``
    itself (no copy) when there is nothing to strip, which is the common case.
    """
    if len(jpeg) < 4 or jpeg[:2] != b"\xff\xd8":
        return jpeg
    keep: list[bytes] = []
    pos, start = 2, 2
    stripped = False
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF:
        marker = jpeg[pos + 1]
        if marker == 0xDA or marker == 0xD9:  # start of scan: the rest is image data
            break
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if 0xE1 <= marker <= 0xEF or marker == 0xFE:
            keep.append(jpeg[start:pos])
            start = pos + 2 + length
            stripped = True
        pos += 2 + length
    if not stripped:
        return jpeg
    keep.append(jpeg[start:])
    return b"\xff\xd8" + b"".join(keep)
