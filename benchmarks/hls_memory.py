"""What LL-HLS costs the front door in memory and CPU: its PSS (anonymous part) with no
viewer, with one camera's muxer running and its window full (one viewer), and with
``--viewers`` more viewers polling the same muxer (tests/integration/hls_client.py: blocking
reloads and every part, as hls.js does), from /proc/PID/smaps_rollup; the window's own bytes
from /status; the front door's CPU per captured frame with one viewer and with all of them
(utime + stime over a window; the viewers' CPU is this process's, not the front door's).

    python -m benchmarks.hls_memory [--resolution 1280x720] [--fps 30] [--viewers 10]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.procstats import Proc, pss_parts
from tests.integration.hls_client import viewer
from tests.stack import Stack


def anon_kb(pid: int) -> int:
    return pss_parts(pid)["anon"] // 1024


async def measure(stack: Stack, pid: int, viewers: int, fill: float, settle: float) -> None:
    base = stack.url("/cam0/hls")
    idle = anon_kb(pid)
    first = asyncio.ensure_future(viewer(base, fill + settle + 4))
    front = Proc.of(pid, "mjpeg")

    async def cpu_per_frame(seconds: float) -> float:
        cpu, frames = front.cpu_seconds(), stack.camera()["frames"]
        await asyncio.sleep(seconds)
        return 1000 * (front.cpu_seconds() - cpu) / max(1, stack.camera()["frames"] - frames)

    await asyncio.sleep(fill - 4)  # seven 1 s segments and the one in progress
    cpu_one = await cpu_per_frame(4)
    one = anon_kb(pid)
    window = stack.camera()["hls"]["window_bytes"] // 1024
    more = [asyncio.ensure_future(viewer(base, settle)) for _ in range(viewers)]
    await asyncio.sleep(2)
    cpu_many = await cpu_per_frame(settle - 3)
    many = anon_kb(pid)
    got = await asyncio.gather(first, *more)
    print(f"front door anon PSS: idle {idle} kB; muxer running, 1 viewer {one} kB (+{one - idle});")
    print(f"  {1 + viewers} viewers {many} kB (+{(many - one) / viewers:.0f} kB per extra viewer)")
    print(
        f"front door CPU per frame: 1 viewer {cpu_one:.2f} ms, {1 + viewers} viewers "
        f"{cpu_many:.2f} ms ({(cpu_many - cpu_one) / viewers:.3f} ms per extra viewer)"
    )
    print(f"muxer window (init + segments + parts in progress): {window} kB")
    print(f"parts fetched per viewer: {sorted(p for _, p in got)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--fill", type=float, default=12.0, help="seconds to fill the window")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds with all viewers")
    args = parser.parse_args()
    camera = {
        "device": "testpattern",
        "resolution": args.resolution,
        "fps": args.fps,
        "keyframe_interval": 1,
    }
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), [camera])
        try:
            time.sleep(3)
            pid = stack.status()["services"]["mjpeg"]["pid"]
            asyncio.run(measure(stack, pid, args.viewers, args.fill, args.settle))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
