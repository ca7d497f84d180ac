"""playout-delay's wire form and its config key (services/webrtc/playout.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensions, unpack_header_extensions

from titanium.common.config import ConfigError, load_config
from titanium.services.webrtc.playout import (
    PLAYOUT_DELAY_URI,
    PlayoutDelayMap,
    decode_delay,
    encode_delay,
)


def test_delay_is_12_bit_min_and_max_in_10_ms_units() -> None:
    assert encode_delay(0, 0) == b"\x00\x00\x00"
    assert encode_delay(100, 100) == bytes([0x00, 0xA0, 0x0A])
    assert decode_delay(encode_delay(40950, 40950)) == (40950, 40950)
    assert decode_delay(encode_delay(10, 2000)) == (10, 2000)


def test_map_writes_the_negotiated_id_beside_aiortcs_own() -> None:
    """Pins: aiortc's map dropped every extension it does not know; ours adds playout-delay
    with the id from the negotiated parameters, keeping mid and abs-send-time."""
    extensions = PlayoutDelayMap(0, 0)
    values = HeaderExtensions(mid="0", abs_send_time=123)
    assert PLAYOUT_DELAY_URI not in str(extensions.set(values))
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(id=9, uri=PLAYOUT_DELAY_URI),
            ]
        )
    )
    assert dict(unpack_header_extensions(*extensions.set(values))) == {
        4: b"0",
        9: b"\x00\x00\x00",
    }


def test_default_is_zero_on_a_lan() -> None:
    assert load_config(None).webrtc.playout_delay_ms == (0, 0)


@pytest.mark.parametrize("value", [None, [0, 0], [100, 200]])
def test_good_playout_delay_loads(tmp_path: Path, value: Any) -> None:
    path = tmp_path / "titanium.json"
    path.write_text(json.dumps({"titanium": {"webrtc": {"playout_delay_ms": value}}}))
    got = load_config(path).webrtc.playout_delay_ms
    assert got == (tuple(value) if value else None)


@pytest.mark.parametrize("value", [[0], [10, 0], [5, 5], [0, 50000], ["0", "0"], [True, 1], 0])
def test_bad_playout_delay_is_refused_naming_the_key(tmp_path: Path, value: Any) -> None:
    path = tmp_path / "titanium.json"
    path.write_text(json.dumps({"titanium": {"webrtc": {"playout_delay_ms": value}}}))
    with pytest.raises(ConfigError, match=r"titanium\.webrtc\.playout_delay_ms"):
        load_config(path)
