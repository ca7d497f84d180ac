"""``titaniumctl token create|list|revoke`` as an admin runs them, with Titanium stopped: real
titaniumctl processes on a config with its own state directory. The tokens they make are
checked by the token authority the front door uses (common/tokens.py), and the URLs they
print by how Mainsail, Fluidd and OctoPrint read them (PROTOCOLS.md)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from tests.integration.conftest import TITANIUMCTL, free_port
from titanium.common.tokens import TokenError, Tokens

CAMERAS = [{"id": "bed", "device": "testpattern"}, {"id": "nozzle", "device": "testpattern"}]


def write_config(tmp: Path, listen: str) -> Path:
    config = tmp / "titanium.json"
    doc = {
        "titanium": {
            "cameras": CAMERAS,
            "runtime_dir": str(tmp / "run"),
            "state_dir": str(tmp / "state"),
            "http": {"listen": listen, "auth": "token"},
        }
    }
    config.write_text(json.dumps(doc))
    return config


def ctl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TITANIUMCTL, "token", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def create(config: Path, *args: str) -> dict[str, Any]:
    out = ctl(config, "create", "--json", *args)
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_create_list_revoke_list(tmp_path: Path) -> None:
    """Pins: a token made by the CLI verifies with what the front door checks, `list` shows
    it, and after `revoke ID` it fails as revoked (the CLI and Titanium share one state
    directory; the CLI needs no running Titanium)."""
    config = write_config(tmp_path, f"127.0.0.1:{free_port()}")
    out = ctl(config, "create", "--camera", "nozzle", "--rights", "control", "--name", "fluidd")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    token = lines[0].removeprefix("token:").strip()
    grant = Tokens(tmp_path / "state").verify(token)
    assert (grant.name, grant.cameras, grant.rights) == ("fluidd", ("nozzle",), "control")
    assert f"id:      {grant.id}" in out.stdout
    assert "grants:  control on nozzle" in out.stdout and "expires: " in out.stdout
    assert 29.9 * 86400 < grant.expires - grant.issued <= 30 * 86400  # the default ttl

    other = create(config, "--ttl", "2h")  # every camera, view
    assert other["grant"]["cameras"] == [] and other["grant"]["rights"] == "view"
    assert other["grant"]["expires"] - other["grant"]["issued"] == 7200

    listed = ctl(config, "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(grant.id))
    assert "fluidd" in row and "nozzle" in row and "control" in row and row.endswith("valid")
    assert any(
        line.startswith(other["grant"]["id"]) and "all cameras" in line
        for line in listed.stdout.splitlines()
    )

    out = ctl(config, "revoke", grant.id)
    assert out.returncode == 0 and grant.id in out.stdout, out.stderr
    with pytest.raises(TokenError) as e:
        Tokens(tmp_path / "state").verify(token)
    assert e.value.code == "revoked"
    assert Tokens(tmp_path / "state").verify(other["token"]).id == other["grant"]["id"]

    rows = {t["id"]: t for t in json.loads(ctl(config, "list", "--json").stdout)}
    assert rows[grant.id]["revoked"] is not None and rows[other["grant"]["id"]]["revoked"] is None
    row = next(line for line in ctl(config, "list").stdout.splitlines() if grant.id in line)
    assert "revoked" in row


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            ("create", "--camera", "garage"),
            "no camera 'garage' in this config; cameras: bed, nozzle",
        ),
        (("create", "--camera", "bed", "--camera", "attic"), "no camera 'attic'"),
        (("create", "--rights", "root"), "'root' is not one of 'view', 'control', 'admin'"),
        (("create", "--ttl", "5y"), "--ttl: a duration such as 30d, 12h, 45m or 90s, not '5y'"),
        (("create", "--ttl", "10s"), "--ttl: a duration from 1 minute to 10 years"),
        (("revoke", "0123456789abcdef"), "no token with id '0123456789abcdef'"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(
    tmp_path: Path, args: tuple[str, ...], reason: str
) -> None:
    """Pins: a wrong camera, right, lifetime or id is refused with exit 2 and says why,
    and issues nothing."""
    config = write_config(tmp_path, f"127.0.0.1:{free_port()}")
    out = ctl(config, *args)
    assert out.returncode == 2 and reason in out.stderr, (out.stdout, out.stderr)
    assert Tokens(tmp_path / "state").list() == []


def test_printed_urls_name_each_dialects_path_on_each_address(tmp_path: Path) -> None:
    """Pins: the URLs carry the token where each client keeps it (query for MJPEG,
    snapshots and camera-streamer; path for WHEP, whose clients drop the query), name the
    camera by path except the first, use the host the config listens on (loopback and the
    LAN addresses for a wildcard), and are the ones the text output prints."""
    port = free_port()
    config = write_config(tmp_path, f"0.0.0.0:{port}")
    doc = create(config)
    token = doc["token"]
    entries = doc["urls"]
    hosts = list(dict.fromkeys(e["host"] for e in entries))
    assert hosts[0] == f"127.0.0.1:{port}" and all(h.endswith(f":{port}") for h in hosts)
    assert "0.0.0.0" not in json.dumps(entries)
    assert [(e["camera"], e["host"]) for e in entries] == [
        (cam, host) for cam in ("bed", "nozzle") for host in hosts
    ]
    for entry in entries:
        cam = "" if entry["camera"] == "bed" else "/" + entry["camera"]
        urls = entry["urls"]
        for key, path in (
            ("mjpeg_stream", "/stream"),
            ("mjpeg_snapshot", "/snapshot"),
            ("webrtc_camerastreamer", "/webrtc"),
        ):
            u = urlsplit(urls[key])
            assert (u.scheme, u.netloc, u.path) == ("http", entry["host"], cam + path), key
            assert parse_qs(u.query) == {"token": [token]}, key
        u = urlsplit(urls["octoprint_webrtc"])
        assert (u.scheme, u.netloc, u.path) == ("webrtc", entry["host"], cam + "/webrtc")
        assert parse_qs(u.query) == {"token": [token]}
        base = urls["webrtc_mediamtx"]
        u = urlsplit(base)
        assert (u.netloc, u.path, u.query) == (entry["host"], f"/t/{token}{cam}/", "")
        # Mainsail adds "/" if missing, then "whep"; Fluidd resolves "whep" against it.
        assert base + "whep" == urljoin(base, "whep") == urls["whep"]
        assert urlsplit(urls["whep"]).path == f"/t/{token}{cam}/whep"

    text = ctl(config, "create", "--camera", "nozzle").stdout
    token = text.splitlines()[0].removeprefix("token:").strip()
    assert f"camera nozzle at 127.0.0.1:{port}:" in text and "camera bed" not in text
    for expected in (
        f"http://127.0.0.1:{port}/nozzle/stream?token={token}",
        f"http://127.0.0.1:{port}/nozzle/snapshot?token={token}",
        f"http://127.0.0.1:{port}/nozzle/webrtc?token={token}",
        f"http://127.0.0.1:{port}/t/{token}/nozzle/",
        f"webrtc://127.0.0.1:{port}/nozzle/webrtc?token={token}",
        f"http://127.0.0.1:{port}/t/{token}/nozzle/whep",
    ):
        assert expected in text.split(), expected
    for label in ('"MJPEG-Streamer"', '"WebRTC (camera-streamer)"', '"WebRTC (MediaMTX)"'):
        assert label in text
    assert "OctoPrint" in text and "WHEP" in text


def test_a_fixed_listen_address_and_the_first_camera_unprefixed(tmp_path: Path) -> None:
    """Pins: on a non-wildcard listen the URLs name exactly that address, and a token for
    the first camera uses the unprefixed routes."""
    port = free_port()
    config = write_config(tmp_path, f"127.0.0.1:{port}")
    entries = create(config, "--camera", "bed")["urls"]
    assert [(e["camera"], e["host"]) for e in entries] == [("bed", f"127.0.0.1:{port}")]
    assert urlsplit(entries[0]["urls"]["mjpeg_stream"]).path == "/stream"
