"""The rate capture puts on its frames (FrameReady.fps): the negotiated one, replaced by the
measured one only when that differs for several seconds."""

from __future__ import annotations

from titanium.services.capture.rate import WINDOWS, DeliveredRate


def test_the_negotiated_rate_stands_through_jitter_and_a_slow_second() -> None:
    rate = DeliveredRate()
    rate.start(30.0)
    for measured in (29.4, 30.6, 12.0, 30.0, 28.0, 31.0):
        assert rate.window(measured) is False
    assert rate.fps == 30.0


def test_a_camera_that_delivers_less_for_long_is_followed_and_back_again() -> None:
    """Pins: a USB camera that negotiated 30 fps and delivers 15 in low light kept telling
    the encoder 30. After WINDOWS seconds at 15 the frames say 15; when the light comes
    back they say the negotiated 30 again."""
    rate = DeliveredRate()
    rate.start(30.0)
    changes = [rate.window(15.2) for _ in range(WINDOWS)]
    assert changes == [False] * (WINDOWS - 1) + [True] and rate.fps == 15.0
    assert [rate.window(m) for m in (14.6, 15.4, 15.0)] == [False] * 3
    changes = [rate.window(29.8) for _ in range(WINDOWS)]
    assert changes[-1] is True and rate.fps == 30.0 == rate.nominal


def test_a_reopen_starts_from_the_new_negotiated_rate() -> None:
    rate = DeliveredRate()
    rate.start(30.0)
    rate.window(15.0)
    rate.window(15.0)
    rate.start(10.0)  # the governor's new rung; the old windows do not count
    assert rate.window(15.0) is False and rate.fps == 10.0
