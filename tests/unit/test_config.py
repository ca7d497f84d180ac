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
    assert cfg.http.listen == "127.0.0.1:8080"


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
            "'high'",
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
            "streaming": {"default_quality": "low"},
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
