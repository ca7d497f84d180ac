"""The timecode strip survives JPEG at quality 50 and reads back to the millisecond."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import simplejpeg

from titanium.common.timecode import draw_timecode, read_timecode, read_timecode_jpeg
from titanium.services.capture.testpattern import TestPatternSource
from titanium.services.mjpeg.jpeg import encode_raw


@pytest.mark.parametrize(("w", "h"), [(640, 480), (1280, 720), (1920, 1080)])
def test_survives_jpeg_q50_on_the_test_pattern(w: int, h: int) -> None:
    src = TestPatternSource(w, h, 30)
    fmt = src.open()
    buf = bytearray(fmt.frame_capacity)
    for n in (0, 17, 95):
        src._draw(memoryview(buf), n)
        y = np.frombuffer(buf, np.uint8, w * h).reshape(h, w)
        t = 1_790_000_000.0 + n * 0.033 + 0.0004
        draw_timecode(y, t)
        jpeg = encode_raw(memoryview(buf), "YU12", w, h, 50)
        assert read_timecode_jpeg(jpeg) == pytest.approx(round(t * 1000) / 1000, abs=1e-6)


def test_reads_scaled_rgb_frames() -> None:
    y = np.full((720, 1280), 90, np.uint8)
    draw_timecode(y, 1_800_000_000.123)
    half = y[::2, ::2]
    rgb = np.dstack([half, half, half])
    assert read_timecode(rgb) == pytest.approx(1_800_000_000.123)


def test_frames_without_a_strip_read_as_none() -> None:
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 255, (480, 640), dtype=np.uint8)
    assert read_timecode(noise) is None
    assert read_timecode(np.zeros((480, 640), np.uint8)) is None
    grey = simplejpeg.encode_jpeg(np.full((64, 64, 3), 128, np.uint8))
    assert read_timecode_jpeg(grey) is None


def test_a_corrupted_bit_is_caught_by_the_crc() -> None:
    y = np.full((480, 640), 90, np.uint8)
    draw_timecode(y, 1_800_000_000.0)
    c = 640 / 80
    x, row = round(c * 20), round(c * 1.5)  # a cell inside the time field
    y[row - 2 : row + 2, x : x + 6] = 255 - y[row, x + 2]
    assert read_timecode(y) is None


def test_survives_h264_at_500_kbps() -> None:
    """libx264 ultrafast/zerolatency at 500 kb/s, as WebRTC viewers on a weak link get."""
    import av

    w, h = 1280, 720
    src = TestPatternSource(w, h, 30)
    buf = bytearray(src.open().frame_capacity)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.bit_rate, enc.framerate = 500_000, Fraction(30)
    enc.options = {"preset": "ultrafast", "tune": "zerolatency"}
    dec = av.CodecContext.create("h264", "r")
    read: list[float | None] = []
    sent: list[float] = []
    for n in range(45):
        src._draw(memoryview(buf), n)
        t = 1_790_000_000.0 + n / 30
        draw_timecode(np.frombuffer(buf, np.uint8, w * h).reshape(h, w), t)
        sent.append(round(t * 1000) / 1000)
        planes = np.frombuffer(buf, np.uint8).reshape(h * 3 // 2, w)
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = n
        for packet in enc.encode(frame):
            read += [read_timecode(d.to_ndarray(format="gray")) for d in dec.decode(packet)]
    assert len(read) >= 40
    assert read == pytest.approx(sent[: len(read)], abs=1e-6)
