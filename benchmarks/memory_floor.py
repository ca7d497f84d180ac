"""The least one camera's six CPython processes can weigh: the floor under the figures of
``benchmarks.memory``.

Six processes stand for supervisord and the five services of one camera (capture, encoder,
front door, WebRTC, governor). None of them does a service's work: each runs an asyncio loop
that waits on a ZeroMQ SUB socket, woken 30 times a second by a small msgpack message (a
FrameReady's shape), which is what every service does between frames. Three ways to start
them, each measured by PSS (smaps_rollup) after ``--settle`` seconds:

- ``exec``: six fresh interpreters that import asyncio, zmq.asyncio and msgpack;
- ``fork``: one interpreter imports those, freezes them (``gc.freeze()``) and forks five;
- ``fork-preload``: the same, importing first what supervisord preloads for the services
  (``titanium.forkserve.PRELOAD``: numpy, aiohttp, PyAV, aiortc and the services' modules);
- ``one process, preload``: a single interpreter importing all of that, as if every
  service ran in one process.

    python -m benchmarks.memory_floor [--settle 6] [--each]

``--each`` adds a ``fork`` stack per heavy library, imported alone by the parent: what that
library costs one camera's processes together, once shared.

Whatever the services do on top (frames, encoders, viewers) comes on top of this floor.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.procstats import pss_parts

MB = 1e6
CHILDREN = 5
COMMON = ("asyncio", "zmq.asyncio", "msgpack")
LIBRARIES = ("numpy", "simplejpeg", "aiohttp", "psutil", "av", "aiortc")

# Run by each process: the parent publishes, every process (the parent too) idles on a SUB.
IDLE = r"""
import asyncio, gc, importlib, os, sys, time
mode, pub_path, preload = sys.argv[1], sys.argv[2], sys.argv[3:]
for name in preload:
    importlib.import_module(name)
import msgpack, zmq, zmq.asyncio

async def idle(publish):
    ctx = zmq.asyncio.Context()
    if publish:
        pub = ctx.socket(zmq.PUB)
        pub.bind(pub_path)
    sub = ctx.socket(zmq.SUB)
    sub.connect(pub_path)
    sub.subscribe(b"")
    seq = 0
    loop = asyncio.get_running_loop()
    while True:
        if publish:
            seq += 1
            await pub.send(msgpack.packb(["cam1", "raw", 1, seq % 8, seq, time.time()]))
        try:
            await asyncio.wait_for(sub.recv(), 1 / 30)
        except asyncio.TimeoutError:
            pass

publish = mode != "exec"
if mode == "fork":
    gc.collect()
    gc.freeze()
    for _ in range({children}):
        pid = os.fork()
        if pid == 0:
            publish = False
            break
        print(pid, flush=True)
if publish or mode == "exec":
    print(os.getpid(), flush=True)
asyncio.run(idle(publish))
"""


def _start(mode: str, preload: tuple[str, ...], pub_path: str) -> list[subprocess.Popen[str]]:
    code = IDLE.replace("{children}", str(CHILDREN))
    argv = [sys.executable, "-c", code, mode, pub_path, *preload]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    # Each in a session of its own: a parent and the children it forked end together.
    if mode in ("fork", "one"):
        argv[3] = "fork" if mode == "fork" else "exec-pub"
        return [
            subprocess.Popen(
                argv, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True
            )
        ]
    # The first binds the publisher the other five follow.
    modes = ["exec-pub"] + ["exec"] * CHILDREN
    return [
        subprocess.Popen(
            [*argv[:3], m, *argv[4:]],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        for m in modes
    ]


def measure(mode: str, preload: tuple[str, ...], settle: float) -> list[dict[str, int]]:
    with tempfile.TemporaryDirectory(prefix="titanium-floor-") as tmp:
        procs = _start(mode, preload, f"ipc://{Path(tmp) / 'frames.pub'}")
        pids: list[int] = []
        try:
            expected = 1 if mode == "one" else 1 + CHILDREN
            for proc in procs:
                assert proc.stdout is not None
                lines = CHILDREN + 1 if mode == "fork" else 1
                pids += [int(proc.stdout.readline()) for _ in range(lines)]
            assert len(pids) == expected, pids
            time.sleep(settle)
            return [pss_parts(pid) for pid in pids]
        finally:
            for proc in procs:  # its group: the forked children too, parsed or not
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for proc in procs:
                proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settle", type=float, default=6.0)
    parser.add_argument(
        "--each", action="store_true", help="also fork with each heavy library alone"
    )
    args = parser.parse_args()
    from titanium.forkserve import PRELOAD

    print(
        f"# {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.release()}, load {os.getloadavg()[0]:.2f}, "
        f"{time.strftime('%H:%M UTC', time.gmtime())}"
    )
    print("| start | sum PSS MB | anon | file | per process PSS MB (the first is the parent) |")
    print("|---|---|---|---|---|")
    variants: list[tuple[str, str, tuple[str, ...]]] = [
        ("exec", "exec", COMMON),
        ("fork", "fork", COMMON),
    ]
    if args.each:
        variants += [(f"fork + {lib}", "fork", (*COMMON, lib)) for lib in LIBRARIES]
    variants.append(("fork-preload", "fork", PRELOAD))
    variants.append(("one process, preload", "one", PRELOAD))
    for label, mode, preload in variants:
        parts = measure(mode, preload, args.settle)
        total = sum(p["pss"] for p in parts) / MB
        anon = sum(p["anon"] for p in parts) / MB
        file = sum(p["file"] for p in parts) / MB
        each = ", ".join(f"{p['pss'] / MB:.1f}" for p in parts)
        print(f"| {label} | {total:.1f} | {anon:.1f} | {file:.1f} | {each} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
