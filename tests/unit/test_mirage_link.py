"""The printer's Mirage link: its config keys beside `titanium_streams` (proxy, device,
plain_ws, ca_file), whether it dials out and where, and the re-dial backoff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from titanium.common.config import ConfigError, config_to_json, parse_config
from titanium.services.mirage.link import Backoff

DEVICE = {"id": "dev_0123456789abcdef", "secret": "s3cret"}


def link_config(**mirage: Any) -> Any:
    streams = mirage.pop("titanium_streams", {"enabled": True})
    return parse_config({"mirage": {"titanium_streams": streams, **mirage}})


@pytest.mark.parametrize(
    ("proxy", "extra", "url"),
    [
        ("mirage.example.org", {}, "wss://mirage.example.org:8443/device"),
        ("mirage.example.org:9443", {}, "wss://mirage.example.org:9443/device"),
        ("wss://10.0.0.5", {}, "wss://10.0.0.5:8443/device"),
        ("ws://127.0.0.1:7000", {}, "ws://127.0.0.1:7000/device"),
        ("ws://[::1]:7000", {}, "ws://[::1]:7000/device"),
        ("10.0.0.5:7000", {"plain_ws": True}, "ws://10.0.0.5:7000/device"),
        ("ws://printers.lan", {"plain_ws": True}, "ws://printers.lan:8443/device"),
    ],
)
def test_proxy_forms_give_the_url_dialled(proxy: str, extra: dict[str, Any], url: str) -> None:
    """Pins: `mirage.proxy`, `mirage.device`, `plain_ws` were unknown keys (refused)."""
    cfg = link_config(proxy=proxy, device=DEVICE, **extra)
    assert cfg.dial_out is None
    assert cfg.mirage_link.url == url
    assert parse_config(json.loads(json.dumps(config_to_json(cfg)))) == cfg


def test_signaling_port_is_the_default_port() -> None:
    cfg = link_config(
        titanium_streams={"enabled": True, "signaling_port": 443}, proxy="m.example", device=DEVICE
    )
    assert cfg.mirage_link.url == "wss://m.example:443/device"


@pytest.mark.parametrize(
    ("mirage", "path", "hint"),
    [
        ({"proxy": "ws://10.0.0.5:7000"}, "mirage.proxy", "mirage.plain_ws"),
        ({"proxy": "http://x"}, "mirage.proxy", "HOST:PORT"),
        ({"proxy": "x:99999"}, "mirage.proxy", "HOST:PORT"),
        ({"proxy": 5}, "mirage.proxy", "a string"),
        ({"device": {"id": "dev 1"}}, "mirage.device.id", "add-device"),
        ({"device": {"name": "x"}}, "mirage.device.name", "id, secret"),
        ({"device": "dev_1"}, "mirage.device", "an object"),
        ({"plain_ws": "yes"}, "mirage.plain_ws", "true or false"),
        ({"ca_file": "/nonexistent/ca.pem"}, "mirage.ca_file", "readable PEM"),
        ({"proxi": ""}, "mirage.proxi", "proxy"),
    ],
)
def test_bad_link_keys_name_their_path(mirage: dict[str, Any], path: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        link_config(**mirage)
    assert info.value.path == path
    assert hint in str(info.value)


def test_ca_file_is_kept(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert link_config(proxy="m.example", ca_file=str(ca)).mirage_link.ca_file == str(ca)


def test_why_it_does_not_dial_out() -> None:
    assert "enabled is false" in str(parse_config({}).dial_out)
    assert "mirage.proxy is not set" in str(link_config(device=DEVICE).dial_out)
    assert "no id and secret" in str(link_config(proxy="m.example").dial_out)
    off = link_config(titanium_streams={"enabled": False}, proxy="m.example", device=DEVICE)
    assert "enabled is false" in str(off.dial_out)


def test_backoff_doubles_to_30s_jittered_and_resets_after_a_lasting_connection() -> None:
    """Pins the re-dial schedule of docs/mirage-protocol.md: 0.5 s doubling up to 30 s with
    jitter, back to 0.5 s after a connection that lasted, 30 s after a refusal."""
    top = Backoff(rand=lambda: 1.0)
    assert [top.next(0.0) for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert top.next(12.0) == 0.5
    assert top.next(0.0, refused=True) == 30
    low = Backoff(rand=lambda: 0.0)
    assert low.next(0.0) == 0.375 and low.next(0.0) == 0.75
