"""What H.264 over a WebSocket costs per viewer: the jmuxer dialect (``/jmuxer``, which the
viewer element's WebCodecs path reads too) with 1 and N clients, CPU per captured frame of
each Titanium process, the front door's PSS, and each client's message rate.

    python -m benchmarks.jmuxer [--duration 15] [--size 1280x720] [--clients 1,10]

Clients are aiohttp WebSocket readers in one process of their own (so their CPU is not
Titanium's), each from its own loopback address (the front door allows 4 per address and
camera), each reading every message as it comes. The per-extra-client figure is the
front door's CPU per frame at N clients less at 1, over N − 1: what one more viewer adds
(the AU is read from the ring once whatever the number of clients; per client it is framed
and written).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks.measured import Measured
from benchmarks.procstats import cpu_model, pss_parts
from tests.stack import Stack

MB = 1e6


def clients(url: str, count: int, seconds: float, out: Connection) -> None:
    """``count`` WebSocket readers of ``url`` (own process): messages and bytes of each."""
    import aiohttp

    async def one(i: int) -> tuple[int, int]:
        messages = size = 0
        end = time.monotonic() + seconds
        # Each from its own loopback address: the front door caps clients per address.
        connector = aiohttp.TCPConnector(local_addr=(f"127.0.0.{2 + i}", 0))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.ws_connect(url, max_msg_size=0) as ws,
        ):
            while (left := end - time.monotonic()) > 0:
                try:
                    msg = await ws.receive(timeout=left)
                except TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.BINARY:
                    break
                messages += 1
                size += len(msg.data)
        return messages, size

    async def run() -> list[tuple[int, int]]:
        return list(await asyncio.gather(*(one(i) for i in range(count))))

    out.send(asyncio.run(run()))
    out.close()


def measure(size: str, count: int, duration: float, warmup: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="ti-bench-jmuxer-"))
    camera = {"device": "testpattern", "resolution": size, "fps": 30}
    bench = Measured(Stack(workdir, [camera]))
    stack = bench.stack
    recv, send = mp.get_context("spawn").Pipe(duplex=False)
    proc = mp.get_context("spawn").Process(
        target=clients, args=(stack.url("/jmuxer"), count, warmup + duration + 3, send)
    )
    proc.start()
    send.close()
    try:
        time.sleep(warmup)
        procs = bench.procs
        cam0, cpu0 = bench.tick(), {n: p.cpu_seconds() for n, p in procs.items()}
        time.sleep(max(0.0, duration - 0.3))
        cam1, cpu1 = bench.tick(), {n: p.cpu_seconds() for n, p in procs.items()}
        frames = max(1, cam1["frames"] - cam0["frames"])
        result = {
            "frames": frames,
            "cpu_ms": {n: 1000 * (cpu1[n] - cpu0[n]) / frames for n in cpu0},
            "pss_mjpeg": pss_parts(procs["mjpeg"].pid)["pss"] / MB,
        }
        got = recv.recv() if recv.poll(duration + warmup + 30) else []
        seconds = warmup + duration + 3
        result["rates"] = [m / seconds for m, _ in got]
        return result
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
        bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--warmup", type=float, default=4)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--clients", default="1,10")
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_model()}, "
        f"load average {os.getloadavg()[0]:.2f}, {args.size} at 30 fps"
    )
    runs = {n: measure(args.size, n, args.duration, args.warmup) for n in counts}
    names = sorted(next(iter(runs.values()))["cpu_ms"])
    print(
        "| clients | "
        + " | ".join(f"{n} ms/frame" for n in names)
        + " | front door PSS MB | messages/s per client |"
    )
    print("|---" * (len(names) + 3) + "|")
    for n, r in runs.items():
        rates = r["rates"]
        rate = f"{min(rates):.1f}–{max(rates):.1f}" if rates else "none"
        cells = " | ".join(f"{r['cpu_ms'][name]:.2f}" for name in names)
        print(f"| {n} | {cells} | {r['pss_mjpeg']:.1f} | {rate} |")
    if len(counts) > 1:
        lo, hi = counts[0], counts[-1]
        extra = (runs[hi]["cpu_ms"]["mjpeg"] - runs[lo]["cpu_ms"]["mjpeg"]) / (hi - lo)
        print(f"front door per extra client: {extra:.3f} ms/frame")
    print(f"# load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
