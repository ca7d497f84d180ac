"""What print protection costs and what it buys: the governor's own CPU at its default
sampling rate, and cyclictest wake-up latency on the core reserved for the printer, idle
and with Titanium streaming 1080p30 to several viewers, with and without protection.

    python -m benchmarks.governor [--duration 15] [--rounds 3] [--rtc 2] [--mjpeg 3]
                                  [--size 1920x1080] [--printer-cpu N]

cyclictest (Debian's rt-tests; installed with apt-get when missing) runs one thread pinned
to the printer's core (the last CPU unless --printer-cpu), 1 ms interval, twice per
scenario: at SCHED_OTHER (how Klipper's klippy host process runs) and at SCHED_FIFO 50 (how
its Linux MCU process runs). Scenarios are interleaved over several rounds so that load from
elsewhere on the machine falls on all of them. The print state is "printing" in every stack
scenario. The viewers are on the other cores in every scenario (on a real printer they are
other machines), so what the printer's core sees is Titanium's doing. See
docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procstats import STAT_FIELDS, Proc, cpu_model, machine_ticks
from tests.stack import TITANIUMCTL, Stack

FIFO_PRIORITY = 50


@dataclass(frozen=True)
class Latency:
    policy: str
    samples: int
    p50: int  # µs
    p99: int
    max: int
    overflows: int


def ensure_cyclictest() -> str:
    found = shutil.which("cyclictest")
    if found:
        return found
    print("installing Debian's rt-tests for cyclictest …", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-q", "rt-tests"], check=True, env=env)
    return shutil.which("cyclictest") or "cyclictest"


def cyclictest(binary: str, cpu: int, priority: int, seconds: float, tmp: Path) -> Latency:
    hist = tmp / f"hist-{cpu}-{priority}.txt"
    cmd = [binary, "-m", "-q", "-a", str(cpu), "-t", "1", "-p", str(priority), "-i", "1000"]
    cmd += ["-D", f"{int(seconds)}s", "-h", "20000", f"--histfile={hist}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 30)
    counts: list[tuple[int, int]] = []
    overflows = 0
    for line in hist.read_text().splitlines():
        if line.startswith("# Histogram Overflows:"):
            overflows = int(line.split(":")[1].split()[0])
        elif line and not line.startswith("#"):
            us, n = line.split()[:2]
            if int(n):
                counts.append((int(us), int(n)))
    total = sum(n for _, n in counts) + overflows

    def pct(q: float) -> int:
        seen = 0
        for us, n in counts:
            seen += n
            if seen >= q * total:
                return us
        return 20000

    top = max((us for us, _ in counts), default=0) if not overflows else 20000
    policy = "SCHED_OTHER" if priority == 0 else f"SCHED_FIFO {priority}"
    return Latency(policy, total, pct(0.5), pct(0.99), top, overflows)


# --- viewers, on the cores the printer does not have ----------------------------------------


def _rtc_viewer(base: str, seconds: float, cpus: set[int], out: Any) -> None:
    os.sched_setaffinity(0, cpus)
    from tests.integration.rtc_client import whep_view

    try:
        got = asyncio.run(asyncio.wait_for(whep_view(base, seconds), seconds + 30))
        out.put(("rtc", got.frames, got.width, got.height))
    except Exception as e:
        out.put(("rtc-error", str(e), 0, 0))


def _mjpeg_viewer(port: int, seconds: float, cpus: set[int], out: Any) -> None:
    os.sched_setaffinity(0, cpus)
    from tests.integration.mjpeg_client import MjpegClient

    try:
        client = MjpegClient(port)
        out.put(("mjpeg", client.frames_for(seconds), 0, 0))
        client.close()
    except Exception as e:
        out.put(("mjpeg-error", str(e), 0, 0))


def start_stack(tmp: Path, size: str, protect: bool, printer_cpu: int) -> Stack:
    """``titaniumctl up`` on the test pattern, print state "printing"."""
    stack = Stack(
        tmp,
        [{"device": "testpattern", "resolution": size, "fps": 30}],
        streaming={"print_protection": protect, "max_viewers": 20},
        governor={"printer_cpus": [printer_cpu]},
    )
    ctl_cmd = [TITANIUMCTL, "print-state", "printing", "--layer", "5", "--config"]
    subprocess.run([*ctl_cmd, str(stack.config_path)], check=True, capture_output=True)
    return stack


def cpu_ticks(cpu: int) -> dict[str, int]:
    """Clock ticks of one CPU by kind, from its line of /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            values = [int(v) for v in line.split()[1:9]]
            return dict(zip(STAT_FIELDS, values, strict=True))
    raise LookupError(f"no cpu{cpu} in /proc/stat")


def busy_percent(before: dict[str, int], after: dict[str, int]) -> float:
    total = sum(after.values()) - sum(before.values())
    idle = after["idle"] + after["iowait"] - before["idle"] - before["iowait"]
    return round(100.0 * (total - idle) / total, 1) if total else 0.0


def governor_cpu(stack: Stack, seconds: float) -> tuple[float, float]:
    """(% of one core, ms per second of wall time) of the governor over ``seconds``: one
    full sample a second and a CPU read every ``cpu_interval`` (0.2 s) by default."""
    pid = stack.status()["services"]["governor"]["pid"]
    proc = Proc.of(pid, "governor")
    before, t0 = proc.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    used, wall = proc.cpu_seconds() - before, time.monotonic() - t0
    return round(100 * used / wall, 2), round(1000 * used / wall, 2)


def scenario(
    name: str,
    args: argparse.Namespace,
    tmp: Path,
    binary: str,
    protect: bool | None,
    governor_window: float,
) -> dict[str, Any]:
    """One run: cyclictest at both policies, with the stack and viewers when ``protect``
    is not None (and the governor's CPU with no viewers first, when ``governor_window``)."""
    viewer_cpus = set(os.sched_getaffinity(0)) - {args.printer_cpu}
    row: dict[str, Any] = {"scenario": name}
    stack = viewers = None
    out: Any = None
    if protect is not None:
        stack = start_stack(tmp, args.size, protect, args.printer_cpu)
        if governor_window:
            row["governor_idle"] = governor_cpu(stack, governor_window)
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        span = 2 * args.duration + 15
        viewers = [
            ctx.Process(target=_rtc_viewer, args=(stack.base, span, viewer_cpus, out))
            for _ in range(args.rtc)
        ] + [
            ctx.Process(target=_mjpeg_viewer, args=(stack.port, span, viewer_cpus, out))
            for _ in range(args.mjpeg)
        ]
        for v in viewers:
            v.start()
        time.sleep(8)  # viewers connected, the governor has had its say
    ticks, core = machine_ticks(), cpu_ticks(args.printer_cpu)
    gov = None
    if stack is not None:
        gov = Proc.of(stack.status()["services"]["governor"]["pid"], "governor")
        gov_before = (gov.cpu_seconds(), time.monotonic())
    row["latency"] = [
        cyclictest(binary, args.printer_cpu, prio, args.duration, tmp)
        for prio in (0, FIFO_PRIORITY)
    ]
    row["machine_busy"] = busy_percent(ticks, machine_ticks())
    # cyclictest itself is ~0 % of it: it sleeps 1 ms between wake-ups.
    row["printer_core_busy"] = busy_percent(core, cpu_ticks(args.printer_cpu))
    if stack is not None and gov is not None and viewers is not None:
        used = gov.cpu_seconds() - gov_before[0]
        row["governor_busy"] = round(100 * used / (time.monotonic() - gov_before[1]), 2)
        cam = stack.status()["governor"]["cameras"]["cam0"]
        row["rung"] = f"{cam['rung']} ({cam['reason']})"
        for v in viewers:
            v.join(args.duration * 2 + 60)
        got = [out.get(timeout=5) for _ in viewers]
        row["viewers"] = ", ".join(f"{kind} {frames}" for kind, frames, _, _ in got)
        stack.stop()
    return row


def summary(name: str, rows: list[dict[str, Any]]) -> list[str]:
    """Median p99 over the rounds (each round's p99 shown), worst max, overflows."""
    lines = [
        f"{name}: machine busy {', '.join(str(r['machine_busy']) for r in rows)} %, printer "
        f"core busy {', '.join(str(r['printer_core_busy']) for r in rows)} %"
    ]
    for i, policy in enumerate(("SCHED_OTHER", f"SCHED_FIFO {FIFO_PRIORITY}")):
        lats: list[Latency] = [r["latency"][i] for r in rows]
        p99s = sorted(lat.p99 for lat in lats)
        overflows = sum(lat.overflows for lat in lats)
        lines.append(
            f"  {policy:<14} p50 {statistics.median(lat.p50 for lat in lats):>5.0f} µs  "
            f"p99 median {statistics.median(p99s):>6.0f} µs (rounds {p99s})  "
            f"max {max(lat.max for lat in lats):>6} µs  ≥20 ms: {overflows}"
        )
    for r in rows:
        if "rung" in r:
            lines.append(f"  governor {r['governor_busy']} % of a core; rung {r['rung']}")
            lines.append(f"  viewers (frames): {r['viewers']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.governor", description=__doc__)
    parser.add_argument("--duration", type=float, default=15, help="seconds per cyclictest")
    parser.add_argument("--rounds", type=int, default=3, help="idle/protected/unprotected runs")
    parser.add_argument("--governor-window", type=float, default=30)
    parser.add_argument("--rtc", type=int, default=2, help="aiortc (WHEP) viewers")
    parser.add_argument("--mjpeg", type=int, default=3, help="MJPEG viewers")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--printer-cpu", type=int, default=max(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        print("needs two CPUs: one for the printer, one for the rest", file=sys.stderr)
        return 2
    binary = ensure_cyclictest()
    print(f"{cpu_model()}, {os.cpu_count()} CPUs; printer core {args.printer_cpu}", flush=True)
    rows: dict[str, list[dict[str, Any]]] = {"idle": [], "protected": [], "unprotected": []}
    with tempfile.TemporaryDirectory(prefix="titanium-bench-gov-") as d:
        for n in range(args.rounds):
            # Interleaved, so load from elsewhere on the machine falls on every scenario.
            for name, protect in (("idle", None), ("protected", True), ("unprotected", False)):
                window = args.governor_window if (n, name) == (0, "protected") else 0
                tmp = Path(d) / f"{name}-{n}"
                tmp.mkdir()
                row = scenario(name, args, tmp, binary, protect, window)
                rows[name].append(row)
                lat = ", ".join(f"{x.policy} p99 {x.p99} µs" for x in row["latency"])
                print(
                    f"round {n + 1} {name}: {lat}; machine busy {row['machine_busy']} %, "
                    f"printer core {row['printer_core_busy']} %",
                    flush=True,
                )
                if "governor_idle" in row:
                    pct, ms = row["governor_idle"]
                    print(
                        f"governor at its default sampling rate, stack idle: {pct} % of a "
                        f"core ({ms} ms a second: a full sample and five CPU reads)",
                        flush=True,
                    )
    print()
    for name, got in rows.items():
        print("\n".join(summary(name, got)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
