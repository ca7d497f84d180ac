"""One msgpack encode/decode pair for every message; bad frames raise MessageError."""

from __future__ import annotations

import msgpack
import pytest

from titanium.common.messages import (
    CameraStatus,
    FrameReady,
    GovernorEvent,
    Heartbeat,
    MessageError,
    QualityCommand,
    StreamDemand,
    ViewerAdmission,
    ViewerCount,
    decode,
    decode_as,
    encode,
)


def test_round_trip_of_every_message() -> None:
    msgs = [
        FrameReady("cam0", "titanium-x-cam0-raw", 42, 1, 7, "YU12", 1280, 720, 1.5),
        CameraStatus(
            "cam0",
            "testpattern",
            True,
            "YU12",
            1280,
            720,
            30.0,
            29.9,
            100,
            1,
            controls={"brightness": 3},
        ),
        Heartbeat("mjpeg", 123, 1.0),
        QualityCommand("cam0", "720p15", 1280, 720, 15, 700_000, False, "first layer"),
        ViewerAdmission("medium", "heat: cpu-thermal 85.0 °C ≥ 80 °C"),
        ViewerCount("mjpeg", "cam0", {"high": 1, "low": 2}),
        GovernorEvent("stream.paused", "cam0", "heat", {"rung": "paused"}, 1.5),
    ]
    for msg in msgs:
        assert decode(encode(msg)) == msg


def test_newer_versions_with_extra_fields_still_decode() -> None:
    topic, body = encode(Heartbeat("mjpeg", 1, 2.0))
    fields = msgpack.unpackb(body)
    fields.update(v=2, future_field="x")
    assert decode([topic, msgpack.packb(fields)]) == Heartbeat("mjpeg", 1, 2.0)


@pytest.mark.parametrize(
    "frames",
    [
        [b"frame"],
        [b"nope", msgpack.packb({})],
        [b"frame", b"\xc1garbage"],
        [b"frame", msgpack.packb([1, 2])],
        [b"frame", msgpack.packb({"camera": "x"})],
    ],
)
def test_malformed_frames_raise_message_error(frames: list[bytes]) -> None:
    with pytest.raises(MessageError):
        decode(frames)


def test_decode_as_checks_the_type() -> None:
    with pytest.raises(MessageError, match="expected FrameReady"):
        decode_as(FrameReady, encode(Heartbeat("x", 1, 1.0)))


def test_a_version_1_stream_demand_counts_as_the_webrtc_services() -> None:
    """Pins StreamDemand's new ``source``: a sender that predates it (version 1, no field)
    must still decode, as the WebRTC service's demand."""
    old = [b"demand", msgpack.packb({"camera": "cam0", "codec": "h264", "viewers": 2, "v": 1})]
    msg = decode(old)
    assert msg == StreamDemand("cam0", "h264", 2, "webrtc")
    assert decode(encode(StreamDemand("cam0", "h264", 1, "mjpeg"))) == StreamDemand(
        "cam0", "h264", 1, "mjpeg"
    )
