"""The libx264 backend: a stream browsers and aiortc accept, keyframes only where wanted."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.encoder_frames import Pattern, decode_all, psnr, settings, sps_fields, yuv_planes
from titanium.common.timecode import draw_timecode, read_timecode
from titanium.services.encoder.backend import AccessUnit, SourceFrame
from titanium.services.encoder.nal import NAL_IDR, NAL_PPS, NAL_SPS, head_types
from titanium.services.encoder.pyav import Libx264Backend

W, H = 320, 240


@pytest.fixture(scope="module")
def pattern() -> Pattern:
    return Pattern(W, H)


def encode_run(
    backend: Libx264Backend, pattern: Pattern, frames: int, fourcc: str = "YU12", force: int = -1
) -> list[AccessUnit]:
    out: list[AccessUnit] = []
    for n in range(frames):
        out += backend.encode(pattern.frame(fourcc, n), force_idr=n == force)
    return out


def test_sps_says_constrained_baseline_at_level_31_or_below(pattern: Pattern) -> None:
    backend = Libx264Backend(settings(), W, H)
    (first,) = backend.encode(pattern.frame("YU12", 0), force_idr=False)
    profile_idc, flags, level = sps_fields(first.data)
    assert profile_idc == 66
    assert flags & 0x40, "constraint_set1: constrained baseline (profile-level-id 42e01f)"
    assert level <= 31


def test_decoded_frames_tagged_as_i_frames_do_not_all_become_keyframes(pattern: Pattern) -> None:
    """Pins the pict_type trap: PyAV tags decoded (MJPEG) frames as I-frames and libx264
    obeys the tag, which would make every frame an IDR."""
    backend = Libx264Backend(settings(fps=30, keyframe_interval=1), W, H)
    units = encode_run(backend, pattern, 75, fourcc="MJPG")
    assert len(units) == 75  # zerolatency, no B-frames: one AU per frame, at once
    assert [i for i, u in enumerate(units) if u.keyframe] == [0, 30, 60]


def test_every_idr_starts_with_sps_and_pps(pattern: Pattern) -> None:
    backend = Libx264Backend(settings(fps=30, keyframe_interval=0.5), W, H)
    units = encode_run(backend, pattern, 40)
    for i, unit in enumerate(units):
        types = head_types(unit.data)
        assert (NAL_IDR in types) == unit.keyframe == (i % 15 == 0), i
        if unit.keyframe:
            assert types.index(NAL_SPS) < types.index(NAL_PPS) < types.index(NAL_IDR)
        else:
            assert NAL_SPS not in types


def test_forced_idr_is_an_idr_and_restarts_the_gop(pattern: Pattern) -> None:
    backend = Libx264Backend(settings(fps=30, keyframe_interval=1), W, H)
    units = encode_run(backend, pattern, 50, force=10)
    assert [i for i, u in enumerate(units) if u.keyframe] == [0, 10, 40]
    assert NAL_SPS in head_types(units[10].data)


def test_a_viewer_joining_at_a_forced_idr_decodes_from_there(pattern: Pattern) -> None:
    backend = Libx264Backend(settings(keyframe_interval=10), W, H)
    units = encode_run(backend, pattern, 20, force=12)
    decoded = decode_all([u.data for u in units[12:]])
    assert len(decoded) == 8
    assert psnr(yuv_planes(decoded[-1])[0], pattern.planes(19)[0]) > 30


def test_stream_decodes_to_the_source_picture_with_its_timecode(pattern: Pattern) -> None:
    backend = Libx264Backend(settings(kbit=800), W * 2, H * 2)
    big = Pattern(W * 2, H * 2)
    units = []
    for n in range(10):
        data = bytearray(big.i420(n))
        draw_timecode(np.frombuffer(data, np.uint8, W * H * 4).reshape(H * 2, W * 2), 1.7e9 + n)
        frame = SourceFrame(memoryview(data), "YU12", W * 2, H * 2, n, n)
        units += backend.encode(frame, force_idr=False)
    decoded = decode_all([u.data for u in units])
    assert [(f.width, f.height) for f in decoded] == [(W * 2, H * 2)] * 10
    assert read_timecode(yuv_planes(decoded[9])[0]) == pytest.approx(1.7e9 + 9)
    assert [(u.mono_ns, u.wall_ns) for u in units] == [(n, n) for n in range(10)]


def test_a_lower_bitrate_takes_effect_without_a_keyframe(pattern: Pattern) -> None:
    # At 600 kbit/s this content is rate-limited (it would take more), so a quarter of it
    # must show; x264's ABR steers towards a new target over a second or two.
    backend = Libx264Backend(settings(kbit=600, keyframe_interval=10), W, H)
    before = encode_run(backend, pattern, 40)
    backend.set_bitrate(150_000)
    after: list[AccessUnit] = []
    for n in range(40, 100):
        after += backend.encode(pattern.frame("YU12", n), force_idr=False)
    assert not any(u.keyframe for u in after)
    size_before = np.mean([len(u.data) for u in before[10:]])
    size_after = np.mean([len(u.data) for u in after[10:]])
    assert size_after < size_before / 1.6, (size_before, size_after)
    assert backend.bitrate == 150_000


def test_a_new_frame_size_reopens_with_an_idr(pattern: Pattern) -> None:
    backend = Libx264Backend(settings(keyframe_interval=10), W, H)
    encode_run(backend, pattern, 3)
    other = Pattern(160, 120)
    (unit,) = backend.encode(other.frame("YU12", 0), force_idr=False)
    assert unit.keyframe
    assert [(f.width, f.height) for f in decode_all([unit.data])] == [(160, 120)]
