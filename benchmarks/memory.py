"""Where each megabyte goes: per process under ``titaniumctl up`` (720p30 test pattern, one
MJPEG viewer and one WebRTC viewer, the issue's scenario; ``--no-webrtc`` for the MJPEG
viewer alone, as runs before 2026-12-02 measured), PSS split into anonymous and
file-backed, threads, glibc arenas and thread stacks, the largest file-backed libraries, and
what importing the service's entry module costs (``python -X importtime`` self time and
tracemalloc'd heap, per top-level package).

    python -m benchmarks.memory [--settle 8] [--no-webrtc] [--variant NAME:KEY=VAL,KEY=VAL ...]

``--variant exec:TITANIUM_FORK=0`` measures the services exec'd, not forked from supervisord
(titanium/forkserve.py), in the same run.

Each ``--variant`` starts another stack in the same run with those variables in the
environment (supervisord passes its environment to every service), so cheap wins are
measured before and after on the same machine minutes apart; the PSS sum of each is printed.
The import figures come from fresh interpreters that import the entry module only: a lower
bound of the running process, which imports more once it works (aiortc on a first viewer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.measured import Measured
from benchmarks.procstats import PROC, Proc, cpu_model, pss_parts
from tests.integration.mjpeg_client import Drain, MjpegClient
from tests.integration.rtc_client import whep_view
from tests.stack import Stack

MB = 1e6
MiB = 1 << 20
WEBRTC_AFTER = 3.0  # seconds the WebRTC viewer plays on after the stack settled
ARENA_BYTES = 64 * MiB  # glibc's HEAP_MAX_SIZE on 64-bit: each non-main arena reserves this
MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$")

ENTRY = {  # the module supervisord runs for each program
    "supervisord": "titanium.supervise",
    "capture": "titanium.services.capture.__main__",
    "encoder": "titanium.services.encoder.__main__",
    "webrtc": "titanium.services.webrtc.__main__",
    "mjpeg": "titanium.services.mjpeg.__main__",
    "governor": "titanium.services.governor.__main__",
    "mirage": "titanium.services.mirage.__main__",
}


@dataclass
class Mapping:
    start: int
    end: int
    perms: str
    path: str
    pss: int = 0


@dataclass
class Footprint:
    name: str
    pss: dict[str, int]
    threads: int
    arenas: int
    arena_pss: int
    stacks: int
    stack_pss: int
    libraries: list[tuple[str, int]] = field(default_factory=list)


def mappings(pid: int) -> list[Mapping]:
    out: list[Mapping] = []
    for line in (PROC / str(pid) / "smaps").read_text().splitlines():
        m = MAPPING.match(line)
        if m:
            out.append(Mapping(int(m[1], 16), int(m[2], 16), m[3], m[4].strip()))
        elif line.startswith("Pss:") and out:
            out[-1].pss = int(line.split()[1]) * 1024
    return out


def _package(path: str) -> str:
    """'numpy' for …/site-packages/numpy/core/_multiarray….so, 'libc' for /usr/lib/…/libc.so.6."""
    parts = Path(path).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            rest = parts[parts.index(marker) + 1 :]
            top = rest[0] if rest else path
            return re.sub(r"(\.libs|-[0-9].*|\.py|\.so)$", "", top.split(".cpython")[0])
    name = Path(path).name
    return name.split(".so")[0] if ".so" in name else name


def footprint(proc: Proc) -> Footprint:
    maps = mappings(proc.pid)
    arenas = arena_pss = stacks = stack_pss = 0
    for i, m in enumerate(maps):
        if m.path or m.perms != "rw-p":
            continue
        nxt = maps[i + 1] if i + 1 < len(maps) else None
        prev = maps[i - 1] if i else None
        reserved = m.end - m.start
        if nxt and not nxt.path and nxt.perms == "---p" and nxt.start == m.end:
            reserved += nxt.end - nxt.start
        if reserved == ARENA_BYTES and m.start % ARENA_BYTES == 0:
            arenas += 1
            arena_pss += m.pss
        elif (
            prev
            and not prev.path
            and prev.perms == "---p"
            and prev.end == m.start
            and m.end - m.start >= MiB
        ):
            stacks += 1  # a thread stack: an anonymous mapping above its guard page
            stack_pss += m.pss
    by_lib: dict[str, int] = defaultdict(int)
    for m in maps:
        if m.path.startswith("/") and m.pss:
            by_lib[_package(m.path)] += m.pss
    status = (PROC / str(proc.pid) / "status").read_text()
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M)[1])  # type: ignore[index]
    top = sorted(by_lib.items(), key=lambda kv: -kv[1])[:4]
    return Footprint(
        proc.name, pss_parts(proc.pid), threads, arenas, arena_pss, stacks, stack_pss, top
    )


# The heap each module's loading leaves allocated (code objects, module-level data), less
# what the modules it imports left: importlib's loader step wrapped, as -X importtime times it.
IMPORT_HEAP = """
import _frozen_importlib as bootstrap, json, tracemalloc
tracemalloc.start()
load, own, stack = bootstrap._load_unlocked, {{}}, [0]
def measured(spec):
    stack.append(0)
    before = tracemalloc.get_traced_memory()[0]
    try:
        return load(spec)
    finally:
        grown = tracemalloc.get_traced_memory()[0] - before
        parts = spec.name.split(".")
        top = ".".join(parts[:3]) if parts[0] == "titanium" else parts[0]
        own[top] = own.get(top, 0) + grown - stack.pop()
        stack[-1] += grown
bootstrap._load_unlocked = measured
import {module}
print(json.dumps(own))
"""


def import_costs(module: str) -> tuple[dict[str, float], dict[str, int]]:
    """(self import time in ms, heap allocated by the imports in bytes) per top-level
    package, from two fresh interpreters (tracemalloc slows the imports it traces)."""
    timed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    ms: dict[str, float] = defaultdict(float)
    for line in timed.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            us, _, name = (f.strip() for f in line.removeprefix("import time:").split("|"))
            parts = name.split(".")
            top = ".".join(parts[:3]) if parts[0] == "titanium" else parts[0]
            ms[top] += int(us) / 1000
    heap = subprocess.run(
        [sys.executable, "-c", IMPORT_HEAP.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(ms), json.loads(heap.stdout)


def _top(figures: dict[str, float] | dict[str, int], n: int, fmt: str) -> str:
    ranked = sorted(figures.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{k} {fmt.format(v)}" for k, v in ranked)


def _webrtc_viewer(base: str, seconds: float) -> threading.Thread:
    """A WHEP viewer (aiortc, in this process: not counted) playing for ``seconds``."""
    thread = threading.Thread(
        target=lambda: asyncio.run(whep_view(base, seconds)), name="webrtc-viewer", daemon=True
    )
    thread.start()
    return thread


def measure_stack(settle: float, env: dict[str, str], webrtc: bool) -> list[Footprint]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with tempfile.TemporaryDirectory(prefix="titanium-memory-") as tmp:
            stack = Stack(
                Path(tmp), [{"device": "testpattern", "resolution": "1280x720", "fps": 30}]
            )
            viewer = None
            player = None
            try:
                viewer = Drain(MjpegClient(stack.port))
                if webrtc:  # plays on until just after the measurement
                    player = _webrtc_viewer(stack.base, settle + WEBRTC_AFTER)
                time.sleep(settle)
                if webrtc and not stack.camera()["encoder"]["active"]:
                    raise RuntimeError("the WebRTC viewer did not start the encoder")
                measured = Measured(stack)
                return [footprint(p) for p in measured.procs.values()]
            finally:
                if viewer is not None:
                    viewer.client.close()
                if player is not None:
                    player.join(WEBRTC_AFTER + 10)
                stack.stop()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def print_table(prints: list[Footprint]) -> None:
    print(
        "| process | PSS | anon | file | shmem | threads | arenas (PSS) | stacks (PSS) "
        "| largest file-backed (PSS MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for f in prints:
        print(
            f"| {f.name} | {f.pss['pss'] / MB:.1f} | {f.pss['anon'] / MB:.1f} "
            f"| {f.pss['file'] / MB:.1f} | {f.pss.get('shmem', 0) / MB:.1f} | {f.threads} "
            f"| {f.arenas} ({f.arena_pss / MB:.1f}) | {f.stacks} ({f.stack_pss / MB:.2f}) "
            f"| {', '.join(f'{k} {v / MB:.1f}' for k, v in f.libraries)} |"
        )
    total = {k: sum(f.pss.get(k, 0) for f in prints) for k in ("pss", "anon", "file", "shmem")}
    print(
        f"| **sum** | **{total['pss'] / MB:.1f}** | {total['anon'] / MB:.1f} "
        f"| {total['file'] / MB:.1f} | {total['shmem'] / MB:.1f} "
        f"| {sum(f.threads for f in prints)} | {sum(f.arenas for f in prints)} | | |"
    )


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    return name, dict(a.split("=", 1) for a in assignments.split(",") if a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settle", type=float, default=8.0, help="seconds streaming first")
    parser.add_argument("--variant", action="append", type=_variant, default=[])
    parser.add_argument("--no-imports", action="store_true", help="skip the import figures")
    parser.add_argument(
        "--no-webrtc", action="store_true", help="one MJPEG viewer only (the runs before 12-02)"
    )
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}, {cpu_model()}, {os.cpu_count()} CPUs,")
    print(f"# Python {platform.python_version()}, {platform.platform()}")
    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sums = []
    for name, env in [("as configured", {}), *args.variant]:
        prints = measure_stack(args.settle, env, not args.no_webrtc)
        print(f"\n## {name} {' '.join(f'{k}={v}' for k, v in env.items())}\n")
        print_table(prints)
        sums.append((name, sum(f.pss["pss"] for f in prints)))
    if len(sums) > 1:
        print("\nPSS sums: " + ", ".join(f"{n} {s / MB:.1f} MB" for n, s in sums))
    if not args.no_imports:
        print(
            "\n| entry module | import self time, top (ms) | heap allocated by imports, top (MB) |"
        )
        print("|---|---|---|")
        for module in ENTRY.values():
            ms, heap = import_costs(module)
            mb = {k: v / MB for k, v in heap.items()}
            print(
                f"| {module} ({sum(ms.values()):.0f} ms, {sum(mb.values()):.1f} MB) "
                f"| {_top(ms, 5, '{:.0f}')} | {_top(mb, 5, '{:.1f}')} |"
            )
    print(f"\n# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
