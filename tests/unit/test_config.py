"""Config validation: every error names the key path and what is allowed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from titanium.common.config import (
    ConfigError,
    config_to_json,
    load_config,
    parse_config,
)


def error(raw: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value


def test_no_config_is_one_camera_on_the_test_pattern_at_720p30() -> None:
    cfg = load_config(None, find_camera=lambda: None)
    (cam,) = cfg.cameras
    assert (cam.device, str(cam.resolution), cam.fps) == ("testpattern", "1280x720", 30)
    assert str(cfg.http.listen) == "127.0.0.1:8080"


def test_auto_device_takes_the_first_camera_found() -> None:
    cfg = parse_config({}, find_camera=lambda: "/dev/video2")
    assert cfg.cameras[0].device == "/dev/video2"


@pytest.mark.parametrize(
    ("raw", "path", "hint"),
    [
        ({"titanium": {"cameras": [{"fps": 500}]}}, "titanium.cameras[0].fps", "1 to 120"),
        ({"titanium": {"cameras": [{"fps": True}]}}, "titanium.cameras[0].fps", "integer"),
        (
            {"titanium": {"cameras": [{"resolution": "big"}]}},
            "titanium.cameras[0].resolution",
            "WIDTHxHEIGHT",
        ),
        (
            {"titanium": {"cameras": [{}, {"device": "/dev/sda"}]}},
            "titanium.cameras[1].device",
            "testpattern",
        ),
        ({"titanium": {"cameras": [{"colour": 1}]}}, "titanium.cameras[0].colour", "known keys"),
        (
            {"titanium": {"streaming": {"default_quality": "ultra"}}},
            "titanium.streaming.default_quality",
            "'720p30'",
        ),
        ({"titanium": {"streaming": {"max_viewers": 0}}}, "titanium.streaming.max_viewers", "1 to"),
        ({"titanium": {"http": {"listen": "8080"}}}, "titanium.http.listen", "HOST:PORT"),
        (
            {"titanium": {"cameras": [{"controls": {"brightness": "hi"}}]}},
            "titanium.cameras[0].controls",
            "integer",
        ),
        ({"titanium": {"cameras": [{"id": "a"}, {"id": "a"}]}}, "titanium.cameras[1].id", "unique"),
        ({"titanium": {"cameras": [{"codec": "vp8"}]}}, "titanium.cameras[0].codec", "'h264'"),
        ({"titanum": {}}, "titanum", "known keys"),
    ],
)
def test_errors_name_the_key_path_and_what_is_allowed(raw: object, path: str, hint: str) -> None:
    e = error(raw)
    assert e.path == path
    assert hint in str(e)
    assert str(e).startswith(path + ":")


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("[::1]:8080", "http://[::1]:8080/"),
        ("::1:8080", "http://[::1]:8080/"),
        ("0.0.0.0:8081", "http://127.0.0.1:8081/"),
        ("[::]:8082", "http://127.0.0.1:8082/"),
        ("192.0.2.7:80", "http://192.0.2.7:80/"),
    ],
)
def test_listen_addresses_print_as_valid_urls(listen: str, url: str) -> None:
    """Pins: `[::1]:8080` was printed as `http://::1:8080/`, an invalid URL."""
    cfg = parse_config({"titanium": {"http": {"listen": listen}}})
    assert cfg.http.listen.local().http_url() == url
    assert parse_config(json.loads(json.dumps(config_to_json(cfg)))) == cfg


def test_bad_json_names_line_and_column(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text('{"titanium": {,}}')
    with pytest.raises(ConfigError, match="line 1 column 15"):
        load_config(p)


def test_resolved_config_reads_back_equal(tmp_path: Path) -> None:
    raw = {
        "titanium": {
            "cameras": [
                {
                    "id": "bed",
                    "device": "file:/x.mp4",
                    "fps": 15,
                    "controls": {"brightness": 120},
                    "cpu": 3,
                }
            ],
            "streaming": {"default_quality": "480p15", "jpeg_quality": "low"},
            "http": {"listen": "0.0.0.0:8081"},
            "runtime_dir": str(tmp_path),
        }
    }
    cfg = parse_config(raw)
    again = parse_config(json.loads(json.dumps(config_to_json(cfg))))
    assert again == cfg
    assert cfg.streaming.jpeg_quality == 50
    assert cfg.cameras[0].source_kind == "file"


def test_ice_servers_from_mirage_and_none_by_default() -> None:
    assert parse_config({}).ice_servers == ()
    raw = {
        "mirage": {
            "titanium_streams": {
                "stun_servers": ["stun:stun.example.org:3478"],
                "turn_servers": [
                    {"urls": "turn:turn.example.org", "username": "u", "credential": "p"}
                ],
            }
        }
    }
    cfg = parse_config(raw)
    assert [s.urls for s in cfg.ice_servers] == [
        ("stun:stun.example.org:3478",),
        ("turn:turn.example.org",),
    ]
    assert cfg.ice_servers[1].username == "u"
    assert parse_config(json.loads(json.dumps(config_to_json(cfg)))) == cfg


@pytest.mark.parametrize(
    ("mirage", "path"),
    [
        (
            {"titanium_streams": {"stun_servers": ["http://x"]}},
            "mirage.titanium_streams.stun_servers[0]",
        ),
        (
            {"titanium_streams": {"turn_servers": [{"urls": "stun:x"}]}},
            "mirage.titanium_streams.turn_servers[0].urls",
        ),
        (
            {"titanium_streams": {"turn_servers": ["turn:x"]}},
            "mirage.titanium_streams.turn_servers[0]",
        ),
        ({"streams": {}}, "mirage.streams"),
    ],
)
def test_bad_ice_servers_name_their_key(mirage: dict[str, object], path: str) -> None:
    assert error({"mirage": mirage}).path == path


SPEC = Path(__file__).parents[1] / "fixtures" / "spec" / "config-example.json"
SHARED_SPEC = Path(__file__).parents[3] / "shared" / "spec" / "config-example.json"


def test_the_specifications_example_is_accepted_as_written() -> None:
    """Pins: `titanium.enabled`, `"bitrate": "2000k"`, `default_quality: "720p30"` and the
    `mirage` block's `enabled`/`signaling_port` were refused at the first key."""
    if SHARED_SPEC.exists():
        assert SPEC.read_bytes() == SHARED_SPEC.read_bytes(), "the fixture drifted from shared/"
    cfg = load_config(SPEC)
    (cam,) = cfg.cameras
    assert (cam.id, cam.device, str(cam.resolution), cam.fps) == (
        "chamber",
        "/dev/video0",
        "1280x720",
        30,
    )
    assert (cam.codec, cam.bitrate, dict(cam.controls)) == (
        "h264",
        2000,
        {"brightness": 50, "contrast": 60, "saturation": 40},
    )
    assert cfg.enabled is True
    assert cfg.streaming.default_quality == "720p30" and cfg.streaming.max_viewers == 5
    assert cfg.mirage.enabled is True and cfg.mirage.signaling_port == 8443
    assert [s.urls for s in cfg.ice_servers] == [("stun:stun.l.google.com:19302",)]
    assert parse_config(json.loads(json.dumps(config_to_json(cfg)))) == cfg


@pytest.mark.parametrize(
    ("value", "kbps"),
    [
        (2000, 2000),
        ("2000k", 2000),
        ("2M", 2000),
        ("2.5M", 2500),
        ("800kbps", 800),
        ("1.5 Mbps", 1500),
    ],
)
def test_bitrate_takes_kbits_or_a_string_with_a_unit(value: object, kbps: int) -> None:
    cfg = parse_config({"titanium": {"cameras": [{"bitrate": value}]}})
    assert cfg.cameras[0].bitrate == kbps


@pytest.mark.parametrize(
    ("raw", "path", "hint"),
    [
        ({"cameras": [{"bitrate": "fast"}]}, "titanium.cameras[0].bitrate", "'2.5M'"),
        ({"cameras": [{"bitrate": "2G"}]}, "titanium.cameras[0].bitrate", "'2000k'"),
        ({"cameras": [{"bitrate": "90k"}]}, "titanium.cameras[0].bitrate", "100 to 50000 kbit/s"),
        ({"cameras": [{"bitrate": 60000}]}, "titanium.cameras[0].bitrate", "100 to 50000 kbit/s"),
        ({"cameras": [{"bitrate": True}]}, "titanium.cameras[0].bitrate", "an integer or a string"),
        (
            {"streaming": {"default_quality": "high"}},
            "titanium.streaming.default_quality",
            "moved to titanium.streaming.jpeg_quality",
        ),
        (
            {"streaming": {"default_quality": "4k"}},
            "titanium.streaming.default_quality",
            "'720p30'",
        ),
        ({"streaming": {"jpeg_quality": 0}}, "titanium.streaming.jpeg_quality", "1 to 100"),
        ({"streaming": {"jpeg_quality": "best"}}, "titanium.streaming.jpeg_quality", "'medium'"),
        ({"enabled": "yes"}, "titanium.enabled", "true or false"),
    ],
)
def test_new_keys_name_their_path_and_the_accepted_forms(
    raw: dict[str, object], path: str, hint: str
) -> None:
    e = error({"titanium": raw})
    assert e.path == path
    assert hint in str(e)


@pytest.mark.parametrize(
    ("streams", "path", "hint"),
    [
        ({"enabled": 1}, "mirage.titanium_streams.enabled", "true or false"),
        ({"signaling_port": 0}, "mirage.titanium_streams.signaling_port", "1 to 65535"),
        ({"signaling_port": 70000}, "mirage.titanium_streams.signaling_port", "1 to 65535"),
        ({"signaling_port": "8443"}, "mirage.titanium_streams.signaling_port", "integer"),
        ({"stun_servers": "stun:x"}, "mirage.titanium_streams.stun_servers", "a list"),
        ({"turn_servers": {}}, "mirage.titanium_streams.turn_servers", "a list"),
    ],
)
def test_mirage_stream_keys_are_validated(streams: dict[str, object], path: str, hint: str) -> None:
    e = error({"mirage": {"titanium_streams": streams}})
    assert e.path == path
    assert hint in str(e)


def test_jpeg_quality_names_and_numbers() -> None:
    assert parse_config({}).streaming.jpeg_quality == 85
    assert (
        parse_config({"titanium": {"streaming": {"jpeg_quality": "low"}}}).streaming.jpeg_quality
        == 50
    )
    assert (
        parse_config({"titanium": {"streaming": {"jpeg_quality": 92}}}).streaming.jpeg_quality == 92
    )
