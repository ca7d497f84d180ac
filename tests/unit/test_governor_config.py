"""The ``titanium.governor`` section: errors name the key path and what is allowed, ordered
thresholds are checked against each other, and the section reads back equal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from titanium.common.config import ConfigError, config_to_json, parse_config


def error(governor: dict[str, Any], cameras: list[Any] | None = None) -> ConfigError:
    raw = {"titanium": {"governor": governor, **({"cameras": cameras} if cameras else {})}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value


@pytest.mark.parametrize(
    ("governor", "path", "hint"),
    [
        ({"cpu_high": 120}, "titanium.governor.cpu_high", "1 to 100"),
        ({"cpu_low": 70}, "titanium.governor.cpu_low", "less than cpu_high (60)"),
        ({"temp_resume": 85}, "titanium.governor.temp_resume", "below temp_limit (80)"),
        ({"memory_reserve_mb": 500}, "titanium.governor.memory_reserve_mb", "at most"),
        ({"sample_interval": 0}, "titanium.governor.sample_interval", "0.05 to 3600"),
        ({"ladder": ["480p15", "720p30"]}, "titanium.governor.ladder", "cannot follow"),
        ({"ladder": ["720p"]}, "titanium.governor.ladder", "'720p15'"),
        ({"first_layer_quality": "fast"}, "titanium.governor.first_layer_quality", "720p15"),
        ({"printer_cpus": [-1]}, "titanium.governor.printer_cpus", "CPU indexes"),
        ({"ionice": "rt"}, "titanium.governor.ionice", "'best-effort'"),
        ({"control_tcp": "7130"}, "titanium.governor.control_tcp", "HOST:PORT"),
        ({"moonraker": {"url": "moon"}}, "titanium.governor.moonraker.url", "http://"),
        ({"moonraker": {"port": 7125}}, "titanium.governor.moonraker.port", "known keys"),
        ({"turbo": True}, "titanium.governor.turbo", "known keys"),
    ],
)
def test_errors_name_the_key_path(governor: dict[str, Any], path: str, hint: str) -> None:
    e = error(governor)
    assert e.path == path and hint in str(e), str(e)


def test_camera_priority_and_cpu_clash_with_the_printer() -> None:
    assert error({}, [{"priority": "urgent"}]).path == "titanium.cameras[0].priority"
    e = error({"printer_cpus": [3]}, [{"cpu": 3}])
    assert e.path == "titanium.cameras[0].cpu" and "printer_cpus [3]" in str(e)


def test_defaults_and_round_trip() -> None:
    cfg = parse_config({})
    g = cfg.governor
    assert (g.cpu_high, g.cpu_low, g.sample_interval, g.calm_time) == (60, 40, 1.0, 30.0)
    assert [str(r) for r in g.ladder] == ["1080p30", "720p30", "720p15", "480p15", "360p5"]
    assert cfg.cameras[0].priority == "medium"
    raw = {
        "titanium": {
            "cameras": [{"priority": "high", "cpu": 0}],
            "governor": {
                "printer_cpus": [3, 2],
                "ladder": ["720p30", "360p10"],
                "moonraker": {"url": "http://127.0.0.1:7125/", "interval": 5},
                "control_tcp": "127.0.0.1:7130",
            },
        }
    }
    cfg = parse_config(raw)
    assert cfg.governor.printer_cpus == (2, 3) and cfg.governor.moonraker.url.endswith("7125")
    assert parse_config(json.loads(json.dumps(config_to_json(cfg)))) == cfg
