"""Passthrough forwards a camera's H.264 byte for byte; SPS/PPS are put back in front of
IDRs from cameras that send them once. The camera's AUs are made here by libx264."""

from __future__ import annotations

import pytest

from tests.unit.encoder_frames import Pattern, decode_all, settings
from titanium.services.encoder.backend import AccessUnit, SourceFrame
from titanium.services.encoder.nal import (
    NAL_IDR,
    NAL_PPS,
    NAL_SLICE,
    NAL_SPS,
    ParameterSets,
    head_types,
    is_idr,
    iter_nals,
    profile_level_id,
)
from titanium.services.encoder.passthrough import PassthroughBackend
from titanium.services.encoder.pyav import Libx264Backend


@pytest.fixture(scope="module")
def camera_aus() -> list[AccessUnit]:
    """What an H.264 camera would give: 45 AUs, an IDR every 15 frames."""
    pattern = Pattern(320, 240)
    x264 = Libx264Backend(settings(keyframe_interval=0.5), 320, 240)
    out: list[AccessUnit] = []
    for n in range(45):
        out += x264.encode(pattern.frame("YU12", n), force_idr=False)
    return out


def test_passthrough_forwards_aus_byte_identical(camera_aus: list[AccessUnit]) -> None:
    backend = PassthroughBackend(settings())
    for n, au in enumerate(camera_aus):
        frame = SourceFrame(memoryview(au.data), "H264", 320, 240, n, 1000 + n)
        (out,) = backend.encode(frame, force_idr=n == 3)  # it cannot force; it must not drop
        assert out.data == au.data
        assert out.keyframe == au.keyframe == (n % 15 == 0)
        assert (out.mono_ns, out.wall_ns) == (n, 1000 + n)


def test_nal_units_are_found_with_3_and_4_byte_start_codes() -> None:
    au = b"\x00\x00\x00\x01\x67SPS\x00\x00\x01\x68PPS\x00\x00\x00\x01\x65IDR"
    assert [(t, au[s:e]) for t, s, e in iter_nals(au)] == [
        (NAL_SPS, b"\x67SPS"),
        (NAL_PPS, b"\x68PPS"),
        (NAL_IDR, b"\x65IDR"),
    ]
    assert is_idr(au) and not is_idr(b"\x00\x00\x01\x41P")
    assert head_types(b"\x00\x00\x01\x41P\x00\x00\x01\x65X") == [NAL_SLICE]


def test_sps_and_pps_are_put_back_in_front_of_a_bare_idr(camera_aus: list[AccessUnit]) -> None:
    """A camera that sends SPS/PPS once: a viewer joining at a later IDR could not decode."""
    first, later = camera_aus[0].data, camera_aus[15].data
    bare = b"".join(
        b"\x00\x00\x00\x01" + later[s:e] for t, s, e in iter_nals(later) if t == NAL_IDR
    )
    params = ParameterSets()
    params.complete(first)
    fixed, keyframe = params.complete(bare)
    assert keyframe and head_types(fixed)[:3] == [NAL_SPS, NAL_PPS, NAL_IDR]
    assert len(decode_all([fixed, *(au.data for au in camera_aus[16:20])])) == 5
    p_frame = camera_aus[16].data
    assert params.complete(p_frame) == (p_frame, False)  # untouched, not copied
    assert params.complete(first)[0] is first


def test_parameter_sets_can_come_from_extradata() -> None:
    params = ParameterSets()
    params.observe(b"\x00\x00\x00\x01\x67\x42\xc0\x1fSPS\x00\x00\x00\x01\x68PPS")
    assert profile_level_id(params.sps) == "42c01f"
    fixed, _ = params.complete(b"\x00\x00\x00\x01\x65IDR")
    assert head_types(fixed) == [NAL_SPS, NAL_PPS, NAL_IDR]
