"""Every ring format becomes the right picture: loaded exactly, then through H.264 and back."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.encoder_frames import Pattern, decode_all, psnr, settings, yuv_planes
from titanium.services.encoder.backend import FrameError, SourceFrame
from titanium.services.encoder.convert import FrameLoader
from titanium.services.encoder.pyav import Libx264Backend

W, H = 320, 240


@pytest.fixture(scope="module")
def pattern() -> Pattern:
    return Pattern(W, H)


@pytest.mark.parametrize("fourcc", ["YU12", "NV12", "YUYV"])
def test_raw_formats_load_exactly(pattern: Pattern, fourcc: str) -> None:
    pic, full_range = FrameLoader().load(pattern.frame(fourcc, 5))
    assert (pic.width, pic.height, pic.format.name, full_range) == (W, H, "yuv420p", False)
    for got, want in zip(yuv_planes(pic), pattern.planes(5), strict=True):
        # YUYV carries each chroma row twice; swscale may average the pair: equal rows.
        assert np.abs(got.astype(int) - want).max() <= (1 if fourcc == "YUYV" else 0)


@pytest.mark.parametrize("fourcc", ["MJPG", "MJPG420"])
def test_jpeg_loads_as_full_range_420(pattern: Pattern, fourcc: str) -> None:
    pic, full_range = FrameLoader().load(pattern.frame(fourcc, 5))
    assert (pic.width, pic.height, pic.format.name, full_range) == (W, H, "yuv420p", True)
    for got, want in zip(yuv_planes(pic), pattern.planes(5), strict=True):
        assert psnr(got, want) > 38


def test_padded_rows_are_handled(pattern: Pattern) -> None:
    """1366 wide: the chroma planes are 683 wide in rows padded to 688 bytes."""
    wide = Pattern(1366, 768)
    pic, _ = FrameLoader().load(wide.frame("NV12", 2))
    assert pic.planes[1].line_size > pic.planes[1].width
    for got, want in zip(yuv_planes(pic), wide.planes(2), strict=True):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("fourcc", ["YU12", "NV12", "YUYV", "MJPG", "MJPG420"])
def test_each_format_encodes_to_the_right_picture(pattern: Pattern, fourcc: str) -> None:
    """Swapped or shifted chroma, a wrong plane or a lost row would all fail here."""
    backend = Libx264Backend(settings(kbit=2000), W, H)
    units = []
    for n in range(4):
        units += backend.encode(pattern.frame(fourcc, n), force_idr=False)
    last = decode_all([u.data for u in units])[-1]
    assert last.format.name == ("yuvj420p" if fourcc.startswith("MJPG") else "yuv420p")
    for got, want in zip(yuv_planes(last), pattern.planes(3), strict=True):
        assert psnr(got, want) > 30


def test_the_loaded_picture_is_reused_not_reallocated(pattern: Pattern) -> None:
    loader = FrameLoader()
    first, _ = loader.load(pattern.frame("YU12", 0))
    second, _ = loader.load(pattern.frame("MJPG", 1))
    assert first is second


def test_a_corrupt_jpeg_is_a_frame_error_and_the_next_one_decodes(pattern: Pattern) -> None:
    loader = FrameLoader()
    with pytest.raises(FrameError):
        loader.load(SourceFrame(memoryview(b"\xff\xd8garbage" * 10), "MJPG", W, H, 0, 0))
    pic, _ = loader.load(pattern.frame("MJPG", 1))
    assert pic.width == W


@pytest.mark.parametrize(("fourcc", "size"), [("RGB3", W * H * 3), ("YU12", 100), ("YUYV", W * H)])
def test_unknown_format_or_short_frame_is_refused(fourcc: str, size: int) -> None:
    with pytest.raises(FrameError, match=fourcc):
        FrameLoader().load(SourceFrame(memoryview(bytes(size)), fourcc, W, H, 0, 0))
