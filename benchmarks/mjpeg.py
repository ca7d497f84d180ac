"""What MJPEG streaming costs: CPU per frame of each Titanium process, memory, latency and
delivery, against the floor of the same JPEG encode done alone, in the same run.

    python -m benchmarks.mjpeg [--duration 20] [--sizes 1280x720,1920x1080] [--viewers 1,10]

For each size and viewer count: ``titaniumctl up`` on the test pattern at 30 fps, N viewer
processes reading /stream as fast as it comes (one of them decodes the timecode in every
frame for latency), a warm-up, then a measured window whose edges sit on the capture
process's once-a-second status so that the frame count and the CPU times cover the same
span. The floor is ``encode_raw`` of test-pattern frames at the same size and quality, timed
with ``time.process_time`` in this process right before each stack. Other load on the machine
(its /proc/stat busy time less every process of ours) is reported next to each figure, since
it moves them all. See docs/performance.md for figures.
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing as mp
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from benchmarks.jpeg_floor import Floor, measure_floor
from benchmarks.measured import Measured
from benchmarks.mjpeg_viewer import ViewerResult, viewer
from benchmarks.procstats import (
    CLK_TCK,
    Proc,
    ProcessGone,
    all_cpu,
    cpu_model,
    machine_ticks,
    pss_parts,
)
from tests.stack import Stack

FPS = 30
CONNECT_TIMEOUT = 30.0  # ten spawned viewers on two busy cores take a few seconds
FLOOR_FACTOR, PER_VIEWER_FRAME_MS = 1.2, 0.1
PSS_TARGET_MB, P50_TARGET_MS = 80.0, 50.0
MB = 1e6  # PSS figures in MB, not MiB: the stricter reading of the target


# --- one configuration ----------------------------------------------------------------------


@dataclass
class Run:
    width: int
    height: int
    viewers: int
    floor: Floor
    window_s: float = 0.0
    captured: int = 0
    encoded: int = 0
    dropped_capture: int = 0
    dropped_delivery: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)  # the services and supervisord
    sys_s: dict[str, float] = field(default_factory=dict)  # the kernel's part of cpu_s
    threads_s: dict[str, dict[str, float]] = field(default_factory=dict)  # by service
    extra_cpu_s: dict[str, float] = field(default_factory=dict)  # titaniumctl, the viewers
    machine: dict[str, float] = field(default_factory=dict)  # /proc/stat shares of all cores
    other_cpu_s: float = 0.0  # the machine's busy time less our processes'
    other_top: dict[str, float] = field(default_factory=dict)  # live processes not ours
    pss: dict[str, dict[str, int]] = field(default_factory=dict)  # pss_parts by service
    ctl_pss: int = 0
    results: list[ViewerResult] = field(default_factory=list)
    stop_code: int | None = None
    leftovers: list[str] = field(default_factory=list)
    error: str = ""


def _sample(procs: dict[str, Proc]) -> dict[str, float]:
    return {name: p.cpu_seconds() for name, p in procs.items()}


def _sample_detail(procs: dict[str, Proc]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """System time and per-thread CPU of each process."""
    return {n: p.cpu_times()[1] for n, p in procs.items()}, {
        n: p.threads() for n, p in procs.items()
    }


def run_config(run: Run, quality: str, duration: float, warmup: float) -> None:
    """Fill ``run`` with measured figures; ``run.error`` says what went wrong, if anything."""
    ctx = mp.get_context("spawn")  # clean clients: no copy of this process's threads
    window = ctx.RawArray(ctypes.c_double, 2)
    clients: list[tuple[BaseProcess, Connection]] = []
    workdir = Path(tempfile.mkdtemp(prefix="ti-bench-"))
    try:
        bench = Measured(
            Stack(
                workdir,
                [{"device": "testpattern", "resolution": f"{run.width}x{run.height}", "fps": FPS}],
                streaming={"jpeg_quality": quality},
            )
        )
    except (OSError, AssertionError) as e:
        shutil.rmtree(workdir, ignore_errors=True)
        run.error = f"the stack did not start: {e}"
        return
    try:
        deadline = time.monotonic() + CONNECT_TIMEOUT + warmup + duration + 30
        for i in range(run.viewers):
            recv, send = ctx.Pipe(duplex=False)
            client = ctx.Process(
                target=viewer,
                name=f"viewer-{i}",
                daemon=True,
                args=(i, bench.stack.port, window, deadline, i == 0, send),
            )
            client.start()
            send.close()
            clients.append((client, recv))
        others = {"benchmark": Proc.of(os.getpid(), "benchmark")}
        if bench.procs["supervisord"].pid != bench.stack.proc.pid:  # an up that did not exec
            others["titaniumctl"] = Proc.of(bench.stack.proc.pid, "titaniumctl")
        for i, (p, _) in enumerate(clients):
            assert p.pid is not None
            others[f"viewer-{i}"] = Proc.of(p.pid, f"viewer-{i}")
        until = time.monotonic() + CONNECT_TIMEOUT
        while bench.stack.camera()["viewers"] < run.viewers:
            if time.monotonic() > until or any(not p.is_alive() for p, _ in clients):
                raise RuntimeError(
                    f"only {bench.stack.camera()['viewers']} of {run.viewers} viewers connected"
                )
            time.sleep(0.2)
        time.sleep(warmup)
        cam0 = bench.tick()
        everyone0 = all_cpu()
        sys0, threads0 = _sample_detail(bench.procs)
        cpu0, extra0, ticks0 = _sample(bench.procs), _sample(others), machine_ticks()
        window[0] = t0 = time.monotonic()
        time.sleep(max(0.0, duration - 0.3))  # the next tick ends the window
        cam1 = bench.tick()
        cpu1, extra1, ticks1 = _sample(bench.procs), _sample(others), machine_ticks()
        sys1, threads1 = _sample_detail(bench.procs)
        everyone1 = all_cpu()
        window[1] = t1 = time.monotonic()
        run.pss = {name: pss_parts(p.pid) for name, p in bench.procs.items()}
        run.ctl_pss = others["titaniumctl"].pss_bytes() if "titaniumctl" in others else 0
        run.window_s = t1 - t0
        run.captured = cam1["frames"] - cam0["frames"]
        run.encoded = cam1["jpeg_frames"] - cam0["jpeg_frames"]
        run.dropped_capture = cam1["frames_dropped_capture"] - cam0["frames_dropped_capture"]
        run.dropped_delivery = cam1["frames_dropped_delivery"] - cam0["frames_dropped_delivery"]
        run.cpu_s = {k: cpu1[k] - cpu0[k] for k in cpu0}
        run.extra_cpu_s = {k: extra1[k] - extra0[k] for k in extra0}
        run.sys_s = {k: sys1[k] - sys0[k] for k in sys0}
        run.threads_s = {
            k: {t: v - threads0[k].get(t, 0.0) for t, v in threads1[k].items()} for k in threads1
        }
        ticks = {k: ticks1[k] - ticks0[k] for k in ticks0}
        run.machine = {k: v / max(1, sum(ticks.values())) for k, v in ticks.items()}
        busy_s = (sum(ticks.values()) - ticks["idle"] - ticks["iowait"]) / CLK_TCK
        ours_s = sum(run.cpu_s.values()) + sum(run.extra_cpu_s.values())
        run.other_cpu_s = max(0.0, busy_s - ours_s)
        ours = {p.pid for p in [*bench.tree, *others.values()]}
        for key, (comm, cpu) in everyone1.items():
            spent = cpu - everyone0.get(key, (comm, 0.0))[1]
            if key[0] not in ours and spent > 0:
                run.other_top[comm] = run.other_top.get(comm, 0.0) + spent
        for p, conn in clients:
            if conn.poll(10):
                run.results.append(conn.recv())
            else:
                run.error += f"{p.name} sent no result; "
    except (RuntimeError, LookupError, ProcessGone, OSError, ValueError) as e:
        run.error += f"{type(e).__name__}: {e}\n{bench.tail()}"
    finally:
        window[1] = window[1] or time.monotonic()  # let every viewer go
        for p, _ in clients:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(3)
            if p.is_alive():
                p.kill()
                p.join(3)
        run.stop_code, run.leftovers = bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if run.stop_code != 0:
        run.error += f"titaniumctl up exited {run.stop_code} on SIGTERM\n{bench.tail()}"


# --- report ---------------------------------------------------------------------------------


def _pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report(run: Run, quality: str) -> dict[str, str]:
    """Print one configuration's figures; return its row of the summary table."""
    name = f"{run.width}x{run.height}, {run.viewers} viewer{'s' * (run.viewers > 1)}"
    print(f"\n== {name} @ {FPS} fps, JPEG q{_quality(quality)} ({quality}) ==")
    if not run.captured:
        print(f"  no measurement: {run.error.strip() or 'no frames captured'}")
        return {"config": name, "note": "no measurement"}
    per = 1000.0 / run.captured
    lat = run.results[0].latencies_ms if run.results else []
    delivered = [r.frames for r in run.results]
    total = sum(run.cpu_s.values()) * per
    target = FLOOR_FACTOR * run.floor.encode_ms + PER_VIEWER_FRAME_MS * (run.viewers - 1)
    pss_mb = {k: v["pss"] / MB for k, v in run.pss.items()}
    pss_sum = sum(pss_mb.values())
    p50, p95, p99 = (_pct(lat, q) for q in (50, 95, 99))
    print(
        f"  window {run.window_s:.2f} s: {run.captured} frames captured "
        f"({run.captured / run.window_s:.1f} fps), {run.encoded} JPEG encodes, dropped "
        f"{run.dropped_capture} in capture / {run.dropped_delivery} in delivery"
    )
    print("  CPU ms per captured frame (utime+stime):")
    for svc, s in run.cpu_s.items():
        threads = sorted(run.threads_s.get(svc, {}).items(), key=lambda kv: -kv[1])
        named = ", ".join(f"{t} {v * per:.2f}" for t, v in threads if v * per >= 0.01)
        print(
            f"    {svc:<22}{s * per:7.3f} ms  {s / run.window_s * 100:5.1f} % of a core  "
            f"(system {run.sys_s.get(svc, 0.0) * per:.2f}; threads: {named or '-'})"
        )
    print(
        f"    {'total':<22}{total:7.3f} ms  {total * run.captured / run.window_s / 10:5.1f}"
        " % of a core"
    )
    print(
        f"    floor: encode alone   {run.floor.encode_ms:7.3f} ms  (mean JPEG "
        f"{run.floor.jpeg_kb:.0f} KiB; drawing the pattern: {run.floor.draw_ms:.3f} ms; "
        f"other load meanwhile {run.floor.other_load * 100:.0f} % of a core)"
    )
    print(f"    total / floor         {total / run.floor.encode_ms:7.2f} x")
    print(
        f"    target ≤ {FLOOR_FACTOR} x floor + {PER_VIEWER_FRAME_MS} ms x {run.viewers - 1} "
        f"= {target:.3f} ms: {_verdict(total <= target)}"
    )
    ctl = run.extra_cpu_s.get("titaniumctl", 0.0)
    clients = sum(v for k, v in run.extra_cpu_s.items() if k.startswith("viewer-"))
    bench = run.extra_cpu_s.get("benchmark", 0.0)
    busy = 1.0 - run.machine.get("idle", 0.0) - run.machine.get("iowait", 0.0)
    kinds = ", ".join(
        f"{k} {v * 100:.1f}" for k, v in run.machine.items() if k not in ("idle", "iowait")
    )
    print(
        f"    not in the total: titaniumctl {ctl * per:.3f} ms, viewer clients "
        f"{clients * per:.3f} ms, this benchmark {bench * per:.3f} ms; machine busy "
        f"{busy * 100:.0f} % of {os.cpu_count()} cores ({kinds})"
    )
    other = run.other_cpu_s
    top = sorted(run.other_top.items(), key=lambda kv: -kv[1])[:3]
    print(
        f"    other load (machine busy less our processes): {other / run.window_s * 100:.1f} %"
        " of a core; busiest others: "
        + ", ".join(f"{k} {v / run.window_s * 100:.1f} %" for k, v in top)
    )
    print("  PSS MB (anon / file / shmem), at the end of the window:")
    for k, v in run.pss.items():
        print(
            f"    {k:<22}{v['pss'] / MB:7.1f}  ({v.get('anon', 0) / MB:.1f} / "
            f"{v.get('file', 0) / MB:.1f} / {v.get('shmem', 0) / MB:.1f})"
        )
    print(
        f"    {'sum':<22}{pss_sum:7.1f}  target ≤ {PSS_TARGET_MB:.0f}: "
        f"{_verdict(pss_sum <= PSS_TARGET_MB)}; titaniumctl {run.ctl_pss / MB:.1f} not in the sum"
    )
    if run.results:
        r0 = run.results[0]
        print(
            f"  latency ms over {len(lat)} frames: p50 {p50:.1f}, p95 {p95:.1f}, "
            f"p99 {p99:.1f} (target p50 ≤ {P50_TARGET_MS:.0f}: "
            f"{_verdict(p50 <= P50_TARGET_MS)}); unreadable timecodes {r0.unreadable}, "
            f"timecode vs X-Timestamp ≤ {r0.stamp_skew_ms:.1f} ms"
        )
        print(
            f"  delivered per viewer: min {min(delivered)}, max {max(delivered)} of "
            f"{run.captured} captured ({min(delivered) / run.captured * 100:.1f} %); "
            f"bad parts {sum(r.bad_parts for r in run.results)}"
        )
    for r in run.results:
        if r.error:
            print(f"  viewer {r.index}: {r.error}")
    print(
        f"  stop: titaniumctl exit {run.stop_code}, "
        f"{'left ' + ', '.join(run.leftovers) if run.leftovers else 'no process left'}"
    )
    if run.error:
        print("  ERROR: " + run.error.strip())
    return {
        "config": name,
        **{f"{k} ms": f"{v * per:.2f}" for k, v in run.cpu_s.items()},
        "total ms": f"{total:.2f}",
        "floor ms": f"{run.floor.encode_ms:.2f}",
        "total/floor": f"{total / run.floor.encode_ms:.2f}",
        "target ms": f"{target:.2f} {'✓' if total <= target else '✗'}",
        "PSS MB": f"{pss_sum:.0f} {'✓' if pss_sum <= PSS_TARGET_MB else '✗'}",
        "latency p50/p95/p99 ms": f"{p50:.0f}/{p95:.0f}/{p99:.0f}",
        "delivered/captured": f"{min(delivered, default=0)}/{run.captured}",
        "machine busy": f"{busy * 100:.0f} %",
        "other load": f"{other / run.window_s * 100:.0f} % of a core",
    }


def _quality(name: str) -> int:
    from titanium.common.config import QUALITY_JPEG

    return QUALITY_JPEG[name]


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def _table(rows: list[dict[str, str]]) -> str:
    cols = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(row.get(c, "") for c in cols) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mjpeg",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    parser.add_argument("--viewers", default="1,10")
    parser.add_argument("--quality", default="high", help="streaming.jpeg_quality")
    args = parser.parse_args(argv)
    sizes = [_size(s) for s in args.sizes.split(",")]
    counts = [int(v) for v in args.viewers.split(",")]
    quality = _quality(args.quality)

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through every finally: the stacks stop

    signal.signal(signal.SIGTERM, on_term)
    print(
        f"command: {sys.executable} -m benchmarks.mjpeg "
        + " ".join(sys.argv[1:] if argv is None else argv)
    )
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores "
        f"({len(os.sched_getaffinity(0))} usable), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    rows, failed = [], False
    floors: dict[tuple[int, int], list[float]] = {}
    for w, h in sizes:
        for n in counts:
            # The floor right before its stack: the same machine state, whatever else the
            # machine is doing around the run.
            run = Run(w, h, n, measure_floor(w, h, quality))
            floors.setdefault((w, h), []).append(run.floor.encode_ms)
            run_config(run, args.quality, args.duration, args.warmup)
            rows.append(report(run, args.quality))
            failed |= bool(run.error) or run.stop_code != 0 or bool(run.leftovers)
    print()
    for w, h in sizes:  # again, to show how steady the floor was over the run
        again = measure_floor(w, h, quality)
        print(
            f"floor {w}x{h} q{quality} after the stacks: encode {again.encode_ms:.3f} ms/frame, "
            f"other load {again.other_load * 100:.0f} % of a core (before each stack: "
            + ", ".join(f"{v:.3f}" for v in floors[w, h])
            + ")"
        )
    print(
        "\nSummary (CPU ms per captured frame; targets: total ≤ 1.2 x floor + 0.1 ms per "
        "extra viewer-frame, PSS ≤ 80 MB, p50 ≤ 50 ms)\n"
    )
    print(_table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, after every stack and viewer has stopped
        print("interrupted", file=sys.stderr)
        sys.exit(130)
