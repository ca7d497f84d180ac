"""titaniumctl's promises: bad configs exit 2 naming the key, a busy port is refused,
status reads the running stack."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from tests.integration.conftest import TITANIUMCTL, Stack


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TITANIUMCTL, *args], capture_output=True, text=True, timeout=timeout)


def test_config_check_names_the_bad_key_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"titanium": {"cameras": [{"fps": 0}]}}))
    out = run("config", "check", str(bad))
    assert out.returncode == 2
    assert "titanium.cameras[0].fps" in out.stderr and "1 to 120" in out.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"titanium": {"cameras": [{"device": "testpattern"}]}}))
    out = run("config", "check", str(good))
    assert out.returncode == 0 and "OK" in out.stdout
    assert run("up", "--config", str(bad)).returncode == 2


def test_up_refuses_a_busy_port_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = tmp_path / "c.json"
        cfg.write_text(
            json.dumps(
                {
                    "titanium": {
                        "cameras": [{"device": "testpattern"}],
                        "runtime_dir": str(tmp_path / "run"),
                        "http": {"listen": f"127.0.0.1:{port}"},
                    }
                }
            )
        )
        out = run("up", "--config", str(cfg))
    assert out.returncode == 1
    assert f"127.0.0.1:{port}" in out.stderr and "titanium.http.listen" in out.stderr


def test_status_reports_cameras_and_services(stack: Stack) -> None:
    out = run("status", "--config", str(stack.config_path))
    assert out.returncode == 0, out.stderr
    assert "camera cam0: testpattern YU12 640x480" in out.stdout
    assert "service mjpeg: running" in out.stdout
    assert "service capture-cam0: running" in out.stdout
    assert "service governor: running" in out.stdout
    assert "governor: print protection on" in out.stdout
    assert "governor camera cam0: 480p30 (640x480, auto)" in out.stdout
