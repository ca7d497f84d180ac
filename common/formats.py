"""The frame formats that travel through the rings, named once: the fourcc each ring slot
records, the size of a raw frame, and views of a raw frame's planes (no copies).

Raw formats are those V4L2 cameras give and encoders take: I420 (``YU12``: a Y plane, then
U and V at half width and height), ``NV12`` (Y, then U and V interleaved at half height)
and packed 4:2:2 ``YUYV``. ``MJPG`` (a camera's own JPEG, or capture's "offline" picture)
and ``H264`` (one access unit) are compressed: their size is that of each payload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where planes are taken: an idle encoder never loads it
    import numpy as np

YU12 = "YU12"
NV12 = "NV12"
YUYV = "YUYV"
MJPG = "MJPG"
H264 = "H264"
RAW = (YU12, NV12, YUYV)


def frame_size(fourcc: str, width: int, height: int) -> int:
    """Bytes in one raw frame; ValueError for a compressed format."""
    if fourcc in (YU12, NV12):
        return width * height * 3 // 2
    if fourcc == YUYV:
        return width * height * 2
    raise ValueError(f"no fixed frame size for {fourcc}")


def planes(data: memoryview | bytes, fourcc: str, width: int, height: int) -> list[np.ndarray]:
    """2-D views of a raw frame's planes: YU12 → [Y, U, V], NV12 → [Y, UV] (U and V
    alternate along each UV row), YUYV → [packed rows of Y U Y V]. ValueError when the
    frame is too short for its size or not raw."""
    import numpy as np

    need = frame_size(fourcc, width, height)
    a = np.frombuffer(data, np.uint8)
    if a.size < need:
        raise ValueError(f"a {width}x{height} {fourcc} frame needs {need} bytes, got {a.size}")
    n = width * height
    if fourcc == YU12:
        return [
            a[:n].reshape(height, width),
            a[n : n * 5 // 4].reshape(height // 2, width // 2),
            a[n * 5 // 4 : need].reshape(height // 2, width // 2),
        ]
    if fourcc == NV12:
        return [a[:n].reshape(height, width), a[n:need].reshape(height // 2, width)]
    return [a[:need].reshape(height, width * 2)]
