"""The URLs a token is pasted in as (common/tokenurls.py), without processes."""

from __future__ import annotations

import pytest

from titanium.common.address import Address
from titanium.common.config import parse_config
from titanium.common.tokenurls import allowed_cameras, camera_urls


def test_an_ipv6_host_is_bracketed_in_every_dialect() -> None:
    """Pins: a ``[::1]:8080`` listen gives URLs a client can parse (host in brackets)."""
    urls = camera_urls(Address("::1", 8080), "a.b-c_d", "cam1")
    assert urls["mjpeg_stream"] == "http://[::1]:8080/cam1/stream?token=a.b-c_d"
    assert urls["octoprint_webrtc"] == "webrtc://[::1]:8080/cam1/webrtc?token=a.b-c_d"
    assert urls["webrtc_mediamtx"] == "http://[::1]:8080/t/a.b-c_d/cam1/"


def test_allowed_cameras_keep_the_config_order_and_name_unknown_ones() -> None:
    config = parse_config(
        {
            "titanium": {
                "cameras": [
                    {"id": "a", "device": "testpattern"},
                    {"id": "b", "device": "testpattern"},
                ]
            }
        }
    )
    assert allowed_cameras(config, []) == ("a", "b")
    assert allowed_cameras(config, ["b", "a"]) == ("a", "b")
    with pytest.raises(ValueError, match="no camera 'c' in this config; cameras: a, b"):
        allowed_cameras(config, ["c"])
