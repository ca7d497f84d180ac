"""Raw frames from shared memory to JPEG, and camera JPEGs cleaned for browser workers."""

from __future__ import annotations

import numpy as np
import pytest
import simplejpeg

from titanium.services.mjpeg.jpeg import encode_raw, strip_app_segments


def frame(fourcc: str, w: int, h: int) -> bytearray:
    sizes = {"YU12": w * h * 3 // 2, "NV12": w * h * 3 // 2, "YUYV": w * h * 2}
    rng = np.random.default_rng(0)
    return bytearray(rng.integers(16, 235, sizes[fourcc], dtype=np.uint8).tobytes())


@pytest.mark.parametrize("fourcc", ["YU12", "NV12", "YUYV"])
def test_encode_raw_gives_a_jpeg_of_the_frame_size(fourcc: str) -> None:
    jpeg = encode_raw(memoryview(frame(fourcc, 320, 240)), fourcc, 320, 240, 80)
    assert simplejpeg.decode_jpeg_header(jpeg)[:2] == (240, 320)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="RGB3"):
        encode_raw(memoryview(bytearray(100)), "RGB3", 10, 10, 80)


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


def test_exif_thumbnail_and_comments_are_stripped() -> None:
    plain = simplejpeg.encode_jpeg(np.full((16, 16, 3), 99, np.uint8))
    thumbnail = b"Exif\0\0" + b"\xff\xd8thumb\xff\xd9"
    dirty = (
        plain[:2]
        + _segment(0xE1, thumbnail)
        + plain[2:20]
        + _segment(0xFE, b"COMMENT-X")
        + plain[20:]
    )
    cleaned = strip_app_segments(dirty)
    assert cleaned.count(b"\xff\xd8") == 1
    assert b"thumb" not in cleaned and b"COMMENT-X" not in cleaned
    assert np.array_equal(simplejpeg.decode_jpeg(cleaned), simplejpeg.decode_jpeg(plain))


def test_clean_jpeg_is_passed_through_untouched() -> None:
    plain = simplejpeg.encode_jpeg(np.full((16, 16, 3), 99, np.uint8))
    assert strip_app_segments(plain) is plain
