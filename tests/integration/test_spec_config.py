"""The specification's own example configuration, as written, under the real CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.conftest import TITANIUMCTL
from titanium.up import _port_free

SPEC = Path(__file__).parents[1] / "fixtures" / "spec" / "config-example.json"


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TITANIUMCTL, *args], capture_output=True, text=True, timeout=timeout)


def status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=3) as r:
        doc: dict[str, Any] = json.load(r)
    return doc


def test_config_check_accepts_the_spec_file_verbatim() -> None:
    """Pins: `config check` refused the spec's example at `titanium.enabled`."""
    out = run("config", "check", str(SPEC))
    assert out.returncode == 0, out.stderr
    assert "chamber (/dev/video0 1280x720@30)" in out.stdout
    shown = json.loads(run("config", "show", str(SPEC)).stdout)
    assert shown["titanium"]["cameras"][0]["bitrate"] == 2000
    assert shown["titanium"]["streaming"]["default_quality"] == "720p30"
    assert shown["mirage"]["titanium_streams"]["signaling_port"] == 8443


def test_up_runs_the_spec_file_verbatim_with_the_camera_offline() -> None:
    """The spec's file names /dev/video0, which this machine lacks: Titanium still comes
    up on its address (127.0.0.1:8080 by default), shows the camera offline and says why."""
    assert not Path("/dev/video0").exists(), "this test expects a machine without a camera"
    assert _port_free("127.0.0.1", 8080) is None, "port 8080 is taken on this machine"
    proc = subprocess.Popen(
        [TITANIUMCTL, "up", "--config", str(SPEC)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("Titanium is streaming. Open") or time.monotonic() > deadline:
                break
        assert any(x.startswith("Titanium is streaming") for x in lines), "\n".join(lines)
        doc = status("http://127.0.0.1:8080/status")
        cam = doc["cameras"]["chamber"]
        assert cam["online"] is False
        assert "/dev/video0" in cam["error"], cam
        assert all(s["state"] == "running" for s in doc["services"].values()), doc["services"]
        with urllib.request.urlopen("http://127.0.0.1:8080/snapshot", timeout=3) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
            assert r.read(2) == b"\xff\xd8"  # the "camera offline" picture
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0


def test_a_disabled_config_starts_nothing_and_says_so(tmp_path: Path) -> None:
    doc = json.loads(SPEC.read_text())
    doc["titanium"]["enabled"] = False
    doc["titanium"]["runtime_dir"] = str(tmp_path / "run")
    cfg = tmp_path / "off.json"
    cfg.write_text(json.dumps(doc))
    started = time.monotonic()
    out = run("up", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "Titanium is disabled in this config" in out.stdout
    assert "titanium.enabled is false" in out.stdout
    assert time.monotonic() - started < 10
    assert not (tmp_path / "run").exists()  # no service, no runtime directory
    out = run("status", "--config", str(cfg))
    assert out.returncode == 0 and "Titanium is disabled in this config" in out.stdout
