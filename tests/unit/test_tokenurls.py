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
    assert urls["jmuxer"] == "ws://[::1]:8080/cam1/jmuxer?token=a.b-c_d"


def test_the_jmuxer_url_is_an_absolute_websocket_url_with_the_token() -> None:
    """Pins the jmuxer dialect's URL in ``token create``: Mainsail refuses a jmuxer stream
    URL that is not an absolute ws:// one, and its player can carry only a query token."""
    urls = camera_urls(Address("192.0.2.7", 8080), "tok", None)
    assert urls["jmuxer"] == "ws://192.0.2.7:8080/jmuxer?token=tok"


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
