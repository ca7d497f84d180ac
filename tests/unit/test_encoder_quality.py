"""The encoder obeys the governor's QualityCommand: the rung's bitrate becomes its ceiling
at once and each change is followed by an IDR. Its frame rate comes from the frames
(FrameReady.fps, what capture really delivers): a new one reopens the backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.encoder_frames import NullBackend
from tests.unit.test_encoder_loop import Rig
from titanium.common.messages import BitrateHint, QualityCommand
from titanium.services.encoder.backend import EncoderSettings


class Recording(Rig):
    """A Rig whose backend factory remembers the settings of each open."""

    def __init__(self) -> None:
        self.opened: list[EncoderSettings] = []
        super().__init__(NullBackend())

    def _open(self, name: str, s: EncoderSettings, width: int, height: int) -> NullBackend:
        self.opened.append(s)
        self.backend = NullBackend(name, s.bitrate)
        return self.backend


@pytest.fixture
def rig() -> Iterator[Recording]:
    r = Recording()
    yield r
    r.close()


def rung(fps: int, bitrate: int, camera: str = "cam0") -> QualityCommand:
    return QualityCommand(camera, f"48p{fps}", 64, 48, fps, bitrate, False, "cpu 95 % > 60 %")


def test_a_new_bitrate_is_the_ceiling_from_the_next_frame_and_an_idr_follows(
    rig: Recording,
) -> None:
    rig.watch()
    for _ in range(20):
        rig.step()
    rig.encoder.on_message(rung(30, 300_000))
    rig.step()
    assert rig.backend.bitrate == 300_000 and rig.backend.forced[-1] is True
    assert len(rig.opened) == 1, "a bitrate change needs no new encoder"
    rig.encoder.on_message(BitrateHint("cam0", 5_000_000, "remb"))  # hints stay under it
    for _ in range(200):
        rig.step()
    assert rig.backend.bitrate == 300_000


def test_a_new_frame_rate_on_the_frames_reopens_the_backend_with_it(rig: Recording) -> None:
    rig.watch()
    rig.step(fps=30)
    rig.encoder.on_message(rung(5, 200_000))
    rig.step(fps=30)  # capture has not reopened yet: still 30 fps
    assert [s.fps for s in rig.opened] == [30]
    rig.step(fps=5)
    assert (rig.opened[-1].fps, rig.opened[-1].bitrate) == (5, 200_000)
    assert rig.encoded()[-1].keyframe
    for _ in range(3):
        rig.step(fps=5)
    assert len(rig.opened) == 2 and rig.encoder.status().fps == 5


def test_the_rate_frames_carry_wins_over_the_rung_and_the_config(rig: Recording) -> None:
    """Pins: the encoder took its rate from the config (30) and from the governor's rung,
    while the camera delivered 15; its GOP and bit budget were then set for twice the
    frames that came. An offline frame (fps 0) changes nothing."""
    rig.watch()
    rig.step(fps=15)
    assert [s.fps for s in rig.opened] == [15]
    rig.encoder.on_message(rung(30, 200_000))  # the rung asks 30: the camera still gives 15
    for _ in range(3):
        rig.step(fps=15)
    rig.step(fps=0.0)
    assert [s.fps for s in rig.opened] == [15] and rig.encoder.status().fps == 15


def test_repeats_and_other_cameras_change_nothing(rig: Recording) -> None:
    rig.watch()
    rig.step()
    rig.encoder.on_message(rung(5, 200_000, camera="cam1"))
    rig.encoder.on_message(rung(30, rig.encoder.factory.settings.bitrate))  # the same rung
    for _ in range(3):
        rig.step()
    assert len(rig.opened) == 1 and rig.backend.forced == [True, False, False, False]
