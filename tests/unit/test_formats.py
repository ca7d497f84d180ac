"""common/formats.py: frame sizes and plane views, the one definition every service uses."""

from __future__ import annotations

import numpy as np
import pytest

from titanium.common import formats


def test_raw_frame_sizes() -> None:
    assert formats.frame_size("YU12", 640, 480) == 640 * 480 * 3 // 2
    assert formats.frame_size("NV12", 640, 480) == 640 * 480 * 3 // 2
    assert formats.frame_size("YUYV", 640, 480) == 640 * 480 * 2
    with pytest.raises(ValueError, match="no fixed frame size for MJPG"):
        formats.frame_size("MJPG", 640, 480)


def test_planes_are_views_of_the_frame_in_place() -> None:
    w, h = 8, 4
    buf = bytearray(np.arange(w * h * 3 // 2, dtype=np.uint8).tobytes())
    y, u, v = formats.planes(memoryview(buf), "YU12", w, h)
    assert (y.shape, u.shape, v.shape) == ((4, 8), (2, 4), (2, 4))
    assert (y[0, 0], u[0, 0], v[0, 0]) == (0, 32, 40)
    buf[32] = 99
    assert u[0, 0] == 99  # no copy
    _, uv = formats.planes(bytes(buf), "NV12", w, h)
    assert uv.shape == (2, 8)
    (packed,) = formats.planes(bytes(w * h * 2), "YUYV", w, h)
    assert packed.shape == (4, 16)


def test_a_short_frame_is_refused_with_its_size() -> None:
    with pytest.raises(ValueError, match="a 8x4 YUYV frame needs 64 bytes, got 10"):
        formats.planes(bytes(10), "YUYV", 8, 4)
