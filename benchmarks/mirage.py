"""What remote viewing through Mirage costs, all measured in one run on 127.0.0.1: a real
``titaniumctl up`` stack (720p30 test pattern) with the printer's dial-out service, a real
``titaniumctl mirage serve`` proxy, Debian's coturn, and aiortc WHEP viewers in this process.

    python -m benchmarks.mirage [--devices 1000] [--duration 10] [--tries 5] [--gap 2]

- time to first frame (offer made → first frame decoded) and the signalling round trip
  (POST → 201): direct at the front door's /whep, through the proxy peer to peer, and
  through the proxy relay-only (coturn); median of ``--tries`` each, interleaved;
- coturn's CPU while relaying one viewer for ``--duration`` s, beside the stream's bitrate;
- the proxy's PSS and CPU per second idle, with the one printer and then with ``--devices``
  more idle devices connected (benchmarks/mirage_fleet.py, a process of its own), and its
  CPU and the time per signalling exchange (POST → 201, DELETE) with them all connected.

Every wait is bounded; everything started here is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.mirage_parts import Coturn, Proxy, View, view
from benchmarks.procstats import cpu_model
from tests.stack import Stack, terminate

MB = 1e6
FLEET_BOUND = 180.0  # 1,000 hellos, each an HMAC and a SQLite read, on a loaded 2-core box


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


def pss_mb(p: psutil.Process) -> float:
    return float(p.memory_full_info().pss) / MB


def idle_cpu(p: psutil.Process, seconds: float) -> float:
    """CPU seconds per second of ``p`` over ``seconds`` of doing nothing asked of it."""
    c0, t0 = cpu_s(p), time.monotonic()
    time.sleep(seconds)
    return (cpu_s(p) - c0) / (time.monotonic() - t0)


def med(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):7.1f} (min {min(values):.1f}, max {max(values):.1f})"


def first_frames(
    urls: dict[str, tuple[str, bool]], tries: int, gap: float
) -> dict[str, list[View]]:
    got: dict[str, list[View]] = {name: [] for name in urls}
    for _ in range(tries):
        for name, (url, relay) in urls.items():
            got[name].append(asyncio.run(asyncio.wait_for(view(url, relay), 60)))
            time.sleep(gap)  # the printer tears the last peer down before the next comes
    return got


def turn_cost(url: str, coturn: psutil.Process, duration: float) -> tuple[View, float, float]:
    """One relay-only viewer held ``duration`` s: the view, coturn's CPU seconds over the hold
    and coturn's idle CPU per second just before."""
    idle = idle_cpu(coturn, 3)
    marks: dict[bool, float] = {}

    def on_hold(start: bool) -> None:
        marks[start] = cpu_s(coturn)

    v = asyncio.run(asyncio.wait_for(view(url, True, duration, on_hold), duration + 60))
    return v, marks[False] - marks[True], idle


def register(proxy: Proxy, count: int, path: Path) -> None:
    """``count`` devices in the proxy's registry through mirage/devices.py; their ids and
    secrets in ``path`` for the fleet."""
    from titanium.mirage.devices import Devices

    devices = Devices(proxy.state_dir)
    creds = []
    for n in range(count):
        device, secret = devices.add(f"idle printer {n}")
        creds.append({"id": device.id, "secret": secret})
    path.write_text(json.dumps(creds))


async def exchanges(url: str, count: int) -> list[float]:
    """``count`` signalling exchanges, one after another: a fresh aiortc offer POSTed (timed
    to its 201), its session DELETEd. Offers are made before the timing starts."""
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection

    times = []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            t = time.monotonic()
            headers = {"Content-Type": "application/sdp"}
            async with http.post(url, data=pc.localDescription.sdp, headers=headers) as r:
                body = await r.text()
                if r.status != 201:
                    raise RuntimeError(f"POST {r.status}: {body[:200]}")
                location = r.headers["Location"]
            times.append((time.monotonic() - t) * 1000)
            async with http.delete(url.split("/d/")[0] + location) as r:
                await r.read()
            await pc.close()
    return times


def run(args: argparse.Namespace, tmp: Path) -> int:
    from titanium.services.webrtc.ice import gather_on

    gather_on(["127.0.0.1"])  # this process's viewers: loopback only, never the LAN
    coturn = Coturn(tmp)
    started: list[Any] = []
    try:
        proxy = Proxy(tmp, coturn.port)
        started.append(proxy)
        p = proxy.ctl("add-device", "benchmark printer")
        device, secret = p["id"], p["secret"]
        token = proxy.ctl("token", "--device", device, "--ttl", "2h")["token"]
        (tmp / "stack").mkdir()
        stack = Stack(
            tmp / "stack",
            [{"device": "testpattern", "resolution": "1280x720", "fps": 30}],
            mirage={
                "titanium_streams": {"enabled": True},
                "proxy": proxy.url.replace("http", "ws"),
                "device": {"id": device, "secret": secret},
            },
        )
        started.append(stack)
        proxy.wait_online(1, 30)
        remote = f"{proxy.url}/d/{device}/whep/cam0?token={token}"
        urls = {
            "direct (front door /whep)": (stack.url("/whep"), False),
            "proxy, peer to peer": (remote, False),
            "proxy, relay-only (coturn)": (remote, True),
        }
        got = first_frames(urls, args.tries, args.gap)
        print(
            f"\n== time to first frame, median of {args.tries}, {args.gap:g} s apart "
            "(ms; offer made → decoded)"
        )
        for name, views in got.items():
            pairs = sorted({"/".join(v.pair) for v in views})
            ms = [v.first_frame_ms for v in views]
            print(f"   {name:28s} {med(ms)}  pair {pairs}")
            print(f"   {'':28s} each: {' '.join(f'{x:.0f}' for x in sorted(ms))}")
        print("\n== signalling round trip, POST → 201 with the answer (ms)")
        for name, views in got.items():
            print(f"   {name:28s} {med([v.post_ms for v in views])}")

        turn_proc = psutil.Process(coturn.proc.pid)
        v, turn_cpu, turn_idle = turn_cost(remote, turn_proc, args.duration)
        kbps = v.bytes_held * 8 / max(v.held_s, 1e-9) / 1000
        print(f"\n== TURN relay, one 720p30 viewer for {v.held_s:.1f} s ({v.frames} frames)")
        relaying = turn_cpu / v.held_s * 100
        print(f"   stream bitrate (transport bytes in)  {kbps:8.0f} kbit/s")
        print(f"   coturn CPU while relaying            {relaying:8.2f} % of a core")
        print(f"   coturn CPU idle                      {turn_idle * 100:8.2f} % of a core")

        pp = psutil.Process(proxy.proc.pid)
        print("\n== proxy (titaniumctl mirage serve, one process)")
        print(f"   1 printer:   PSS {pss_mb(pp):6.1f} MB, idle CPU ", end="")
        print(f"{idle_cpu(pp, args.duration) * 1000:.2f} ms/s")
        t = time.monotonic()
        register(proxy, args.devices, tmp / "fleet.json")
        print(f"   registered {args.devices} devices in {time.monotonic() - t:.1f} s")
        fleet_cmd = [sys.executable, "-m", "benchmarks.mirage_fleet"]
        fleet = subprocess.Popen(
            [*fleet_cmd, proxy.url.replace("http", "ws") + "/device", str(tmp / "fleet.json")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(fleet)
        c0, t = cpu_s(pp), time.monotonic()
        proxy.wait_online(1 + args.devices, FLEET_BOUND)
        hello_cpu, hello_s = cpu_s(pp) - c0, time.monotonic() - t
        print(
            f"   {args.devices} devices dialled in {hello_s:.1f} s, proxy CPU "
            f"{hello_cpu * 1000 / args.devices:.2f} ms per hello"
        )
        time.sleep(2)  # the executor threads settle
        idle = idle_cpu(pp, args.duration)
        print(f"   {1 + args.devices} online: PSS {pss_mb(pp):6.1f} MB, idle CPU ", end="")
        print(f"{idle * 1000:.2f} ms/s  (proxy pings each every 15 s)")
        n = args.exchanges
        c0, t = cpu_s(pp), time.monotonic()
        times = asyncio.run(asyncio.wait_for(exchanges(remote, n), 30 + 5 * n))
        spent, elapsed = cpu_s(pp) - c0, time.monotonic() - t
        active = (spent - idle * elapsed) / n * 1000
        print(
            f"   {n} exchanges (POST → 201, DELETE) with all online: proxy CPU "
            f"{active:.2f} ms each (idle rate taken off); POST → 201 {med(times)} ms"
        )
        print(f"   stack's cameras still streaming: {stack.camera()['frames']} frames captured")
        return 0
    finally:
        for thing in reversed(started):
            if isinstance(thing, subprocess.Popen):
                terminate(thing, 10)
            elif isinstance(thing, Stack):
                thing.stop()
            else:
                thing.close()
        coturn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.mirage")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--tries", type=int, default=5)
    ap.add_argument("--exchanges", type=int, default=20)
    ap.add_argument("--gap", type=float, default=2.0, help="seconds between viewer tries")
    args = ap.parse_args(argv)
    if shutil.which("turnserver") is None:
        print("needs Debian's coturn (turnserver)", file=sys.stderr)
        return 2
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores; load {os.getloadavg()}; command: "
        "python -m benchmarks.mirage " + " ".join(argv if argv is not None else sys.argv[1:])
    )
    tmp = Path(tempfile.mkdtemp(prefix="ti-bench-mirage-"))
    try:
        return run(args, tmp)
    finally:
        print(f"load average after: {os.getloadavg()}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
