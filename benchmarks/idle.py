"""What the processes that only wait cost: the encoder with nobody watching H.264 and the
governor with no print running, on a 1280x720 30 fps test-pattern stack without viewers.

    python -m benchmarks.idle [--seconds 15] [--label new]

For each service: CPU ms per captured frame (every thread's run time from
/proc/PID/task/*/schedstat, in ns, over the window, divided by capture's frame count from
/status) and wake-ups a second (voluntary context switches of every thread). To compare
two trees in the same run, run it alternately with each tree's interpreter (see
docs/performance.md, "Idle costs").
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tests.stack import Stack


def cpu_seconds(pid: int) -> float:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return sum(int((t / "schedstat").read_text().split()[0]) for t in tasks) / 1e9


def wakeups(pid: int) -> int:
    n = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                n += int(line.split()[1])
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        camera = {"device": "testpattern", "resolution": "1280x720", "fps": 30}
        stack = Stack(Path(d), [camera])
        try:
            time.sleep(3)  # past start-up and the governor's first actuation
            services = stack.status()["services"]
            pids = {name: s["pid"] for name, s in services.items() if s.get("pid")}
            c0 = {n: cpu_seconds(p) for n, p in pids.items()}
            w0 = {n: wakeups(p) for n, p in pids.items()}
            f0, t0 = stack.camera()["frames"], time.monotonic()
            time.sleep(args.seconds)
            f1, t1 = stack.camera()["frames"], time.monotonic()
            frames = f1 - f0
            load = os.getloadavg()[0]
            for name, pid in sorted(pids.items()):
                ms = 1000 * (cpu_seconds(pid) - c0[name]) / frames
                per_s = (wakeups(pid) - w0[name]) / (t1 - t0)
                print(
                    f"{args.label:4s} {name:14s} {ms:.3f} ms/frame {per_s:5.1f} wake-ups/s"
                    f" ({frames} frames, load {load:.2f})",
                    flush=True,
                )
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
