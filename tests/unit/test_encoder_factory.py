"""The backend factory: 'auto' picks passthrough, then the hardware encoder, then libx264;
a backend that cannot open is logged with its reason and not probed again."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.unit.encoder_frames import NullBackend, settings
from titanium.services.encoder.backend import BackendError, EncoderSettings, H264Backend
from titanium.services.encoder.factory import BackendFactory, open_backend


class Opener:
    """Opens real backends but refuses the ones named in ``broken``, recording each try."""

    def __init__(self, *broken: str) -> None:
        self.broken = broken
        self.tried: list[str] = []

    def __call__(self, name: str, s: EncoderSettings, width: int, height: int) -> H264Backend:
        self.tried.append(name)
        if name in self.broken:
            raise BackendError(f"{name} does not open at {width}x{height}: no device")
        return open_backend(name, s, width, height)


def test_auto_passes_h264_through() -> None:
    opener = Opener()
    assert BackendFactory("auto", settings(), opener).make("H264", 640, 480).name == "passthrough"
    assert opener.tried == ["passthrough"]


def test_auto_prefers_the_hardware_encoder_when_it_opens() -> None:
    tried: list[str] = []

    def opener(name: str, s: EncoderSettings, width: int, height: int) -> H264Backend:
        tried.append(name)
        return NullBackend(name)  # no M2M device here: a fake one "opens"

    factory = BackendFactory("auto", settings(), opener)
    assert factory.make("YUYV", 640, 480).name == "h264_v4l2m2m"
    assert tried == ["h264_v4l2m2m"]


@pytest.mark.parametrize("choice", ["auto", "h264_v4l2m2m"])
def test_hardware_that_cannot_open_falls_back_to_libx264_with_the_reason_logged(
    choice: str, caplog: pytest.LogCaptureFixture
) -> None:
    opener = Opener("h264_v4l2m2m")
    factory = BackendFactory(choice, settings(), opener)
    with caplog.at_level(logging.WARNING, "titanium.encoder"):
        assert factory.make("NV12", 640, 480).name == "libx264"
    assert "h264_v4l2m2m cannot be used: h264_v4l2m2m does not open at 640x480" in caplog.text
    assert "h264_v4l2m2m" in factory.error
    assert factory.make("NV12", 640, 480).name == "libx264"
    assert opener.tried == ["h264_v4l2m2m", "libx264", "libx264"]  # probed once


def test_libx264_choice_never_touches_the_hardware_encoder() -> None:
    opener = Opener()
    assert BackendFactory("libx264", settings(), opener).make("MJPG", 64, 48).name == "libx264"
    assert opener.tried == ["libx264"]


def test_a_hardware_encoder_that_breaks_while_encoding_is_not_tried_again() -> None:
    factory = BackendFactory("auto", settings(), Opener())
    factory.failed("h264_v4l2m2m", "device gone")
    factory.failed("libx264", "one bad frame")
    assert list(factory.failures) == ["h264_v4l2m2m"]


def test_no_encoder_at_all_is_a_clear_error() -> None:
    factory = BackendFactory("auto", settings(), Opener("h264_v4l2m2m", "libx264"))
    with pytest.raises(BackendError, match=r"no H\.264 encoder opens"):
        factory.make("YU12", 64, 48)


@pytest.mark.skipif(
    any(Path("/dev").glob("video*")), reason="a V4L2 device exists: M2M may really open"
)
def test_the_real_m2m_encoder_fails_to_open_without_a_device() -> None:
    with pytest.raises(BackendError, match="h264_v4l2m2m does not open at 640x480"):
        open_backend("h264_v4l2m2m", settings(), 640, 480)
