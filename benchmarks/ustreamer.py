"""Titanium's capture + MJPEG front door against Debian's ustreamer, on the same vivid camera in
the same VM: each serves 640x480 YUYV at 25 fps (or --fps) as MJPEG to the same number of
clients for the same time. Prints CPU per served frame for each, their ratio, and the frames
delivered.

    python tools/vm/vivid_vm.py run -- /opt/venv/bin/python -m benchmarks.ustreamer \\
        [--fps 25] [--clients 2] [--seconds 20]

It runs inside the vivid VM (tools/vm/), whose image has ustreamer. CPU is utime + stime from
/proc/PID/stat (every thread) over the measured window: ustreamer's one process; Titanium's
capture and mjpeg services (not supervisord, nor the encoder and WebRTC services, idle without
WebRTC viewers). A served frame is one JPEG part a client received. Both encode at Titanium's
"high" quality. Under QEMU's emulation (no KVM) every CPU figure is many times what real
hardware spends; compare the two, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.mjpeg_client import MjpegClient
from titanium.common.config import QUALITY_JPEG

DEVICE = "/dev/video0"
SIZE = "640x480"
QUALITY = QUALITY_JPEG["high"]
PORT = 8090


@dataclass(frozen=True)
class Result:
    server: str
    cpu: dict[str, float]  # CPU seconds in the window, by process
    parts: list[int]  # JPEG parts each client received in the window
    seconds: float

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())

    @property
    def cpu_ms_per_frame(self) -> float:
        served = sum(self.parts)
        return 1000 * self.cpu_seconds / served if served else float("inf")


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """utime + stime so far of each process (all its threads), by name."""
    out = {}
    for name, pid in pids.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"benchmark: {what} not ready in {timeout:.0f} s")


def measure(
    server: str, pids: dict[str, int], clients: int, warmup: float, seconds: float
) -> Result:
    """``clients`` viewers on /stream; CPU of ``pids`` and parts received over the window."""
    counts = [0] * clients
    viewers = [MjpegClient(PORT) for _ in range(clients)]

    def read(i: int) -> None:
        try:
            while True:
                viewers[i].next_part()
                counts[i] += 1
        except (OSError, ConnectionError):
            pass  # closed at the end

    for i in range(clients):
        threading.Thread(target=read, args=(i,), daemon=True).start()
    time.sleep(warmup)
    start, cpu0, t0 = list(counts), cpu_seconds(pids), time.monotonic()
    time.sleep(seconds)
    end, cpu1, t1 = list(counts), cpu_seconds(pids), time.monotonic()
    for viewer in viewers:
        viewer.close()
    cpu = {name: cpu1[name] - cpu0[name] for name in pids}
    return Result(server, cpu, [b - a for a, b in zip(start, end, strict=True)], t1 - t0)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_ustreamer(fps: int, clients: int, warmup: float, seconds: float) -> Result:
    proc = subprocess.Popen(
        ["ustreamer", "--device", DEVICE, "--resolution", SIZE, "--format", "YUYV",
         "--desired-fps", str(fps), "--encoder", "CPU", "--quality", str(QUALITY),
         "--host", "127.0.0.1", "--port", str(PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{PORT}/snapshot"
        wait_until(lambda: urllib.request.urlopen(url, timeout=5).status == 200, 60, "ustreamer")
        return measure("ustreamer", {"ustreamer": proc.pid}, clients, warmup, seconds)
    finally:
        stop(proc)


def _status() -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/status", timeout=5) as r:
        doc: dict[str, Any] = json.load(r)
        return doc


def run_titanium(fps: int, clients: int, warmup: float, seconds: float) -> Result:
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    camera = {"device": DEVICE, "resolution": SIZE, "fps": fps, "format": "YUYV"}
    config = {
        "titanium": {
            "runtime_dir": str(tmp / "run"),
            "http": {"listen": f"127.0.0.1:{PORT}"},
            "cameras": [camera],
        }
    }
    (tmp / "titanium.json").write_text(json.dumps(config))
    titaniumctl = str(Path(sys.executable).parent / "titaniumctl")
    proc = subprocess.Popen(
        [titaniumctl, "up", "--config", str(tmp / "titanium.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: _status()["cameras"]["cam0"]["frames"] > 0, 120, "Titanium")
        services = _status()["services"]
        pids = {name: services[name]["pid"] for name in ("capture-cam0", "mjpeg")}
        return measure("titanium", pids, clients, warmup, seconds)
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.ustreamer", description=__doc__)
    parser.add_argument("--fps", type=int, default=25, help="25 (vivid's top at 640x480), 10, 5…")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    args = parser.parse_args(argv)
    if not Path(DEVICE).exists():
        print(f"benchmark: no {DEVICE}; run it in the vivid VM (see the docstring)")
        return 2
    results = [
        run(args.fps, args.clients, args.warmup, args.seconds)
        for run in (run_ustreamer, run_titanium)
    ]
    print(f"{SIZE} YUYV at {args.fps} fps, quality {QUALITY}, {args.clients} clients")
    print("server      CPU s  parts per client          fps/client  CPU ms per served frame")
    for r in results:
        per_client = " ".join(str(n) for n in r.parts)
        print(
            f"{r.server:<10} {r.cpu_seconds:6.2f}  {per_client:<24} "
            f"{sum(r.parts) / len(r.parts) / r.seconds:10.1f}  {r.cpu_ms_per_frame:10.2f}"
        )
    for r in results:
        print(
            f"{r.server} CPU s by process: " + ", ".join(f"{k} {v:.2f}" for k, v in r.cpu.items())
        )
    ustreamer, titanium = results
    ratio = titanium.cpu_ms_per_frame / ustreamer.cpu_ms_per_frame
    print(f"titanium / ustreamer CPU per served frame: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
