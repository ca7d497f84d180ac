"""A machine-readable wall-clock strip drawn into test frames, so any client that decodes a
frame can compute capture-to-viewer latency.

The strip is 2 rows of 32 square cells in the top-left corner of the luma plane, one bit a
cell, black (16) for 0 and white (235) for 1: an 8-bit sync word, the capture time in
milliseconds since the epoch (48 bits) and a CRC-8 of those 6 bytes. A cell is width/80
pixels (16 px at 1280 wide), which survives JPEG at quality 50 and H.264 at 500 kb/s, and
the geometry is a fraction of the frame width, so a scaled frame still reads.
The same reader exists in JavaScript in the web viewer (services/mjpeg/static).
"""

from __future__ import annotations

import numpy as np

SYNC = 0b10110010
COLS = 32
ROWS = 2
BITS = COLS * ROWS
BLACK, WHITE = 16, 235


def cell_size(width: int) -> float:
    return width / 80.0


def strip_box(width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the strip, with a one-cell margin of grey around it."""
    c = cell_size(width)
    return 0, 0, round(c * (COLS + 2)), round(c * (ROWS + 2))


def crc8(data: bytes) -> int:
    """CRC-8/ATM (poly 0x07)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _bits(ms: int) -> list[int]:
    payload = (ms & (2**48 - 1)).to_bytes(6, "big")
    word = (SYNC << 56) | (int.from_bytes(payload, "big") << 8) | crc8(payload)
    return [(word >> (BITS - 1 - i)) & 1 for i in range(BITS)]


def draw_timecode(luma: np.ndarray, wall_time: float) -> None:
    """Draw ``wall_time`` (seconds since the epoch) into a 2-D uint8 luma plane, in place."""
    height, width = luma.shape
    if width % 80 == 0 and 4 * width // 80 <= height:
        # Whole-pixel cells (every common width): the strip with its grey margin as one
        # small grid of levels, scaled up and written once; it runs every frame.
        grid = np.full((ROWS + 2, COLS + 2), 128, np.uint8)
        bits = np.array(_bits(round(wall_time * 1000)), bool).reshape(ROWS, COLS)
        grid[1:-1, 1:-1] = np.where(bits, WHITE, BLACK)
        c = width // 80
        luma[: (ROWS + 2) * c, : (COLS + 2) * c] = grid.repeat(c, 0).repeat(c, 1)
        return
    c = cell_size(width)
    x0, y0, x1, y1 = strip_box(width)
    luma[y0 : min(y1, height), x0:x1] = 128
    for i, bit in enumerate(_bits(round(wall_time * 1000))):
        row, col = divmod(i, COLS)
        xa, xb = round(c * (col + 1)), round(c * (col + 2))
        ya, yb = round(c * (row + 1)), round(c * (row + 2))
        luma[ya:yb, xa:xb] = WHITE if bit else BLACK


def read_timecode(image: np.ndarray) -> float | None:
    """The capture time drawn by :func:`draw_timecode`, in seconds since the epoch, or None
    when the frame carries no valid strip. ``image``: 2-D luma/grey, or H x W x 3 RGB."""
    if image.ndim == 3:
        image = image[:, :, 1]  # green carries most of the luma
    height, width = image.shape
    c = cell_size(width)
    if c * (ROWS + 2) > height or c < 2:
        return None
    # Sample the middle half of each cell, away from ringing at its edges.
    q = c / 4
    word = 0
    for i in range(BITS):
        row, col = divmod(i, COLS)
        xa, ya = c * (col + 1), c * (row + 1)
        cell = image[round(ya + q) : round(ya + 3 * q), round(xa + q) : round(xa + 3 * q)]
        word = (word << 1) | int(cell.mean() > 128)
    if word >> 56 != SYNC:
        return None
    payload = ((word >> 8) & (2**48 - 1)).to_bytes(6, "big")
    if crc8(payload) != word & 0xFF:
        return None
    return int.from_bytes(payload, "big") / 1000.0


def read_timecode_jpeg(jpeg: bytes) -> float | None:
    """:func:`read_timecode` of a JPEG image (decoded to grey by libjpeg-turbo)."""
    import simplejpeg

    return read_timecode(simplejpeg.decode_jpeg(jpeg, colorspace="GRAY")[:, :, 0])
