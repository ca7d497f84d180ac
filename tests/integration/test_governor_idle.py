"""The governor's own cost while it only waits (issue 12): not printing, at its default
timing, it wakes about once a second, not for every CPU read and bus message."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from tests.integration.conftest import Stack
from tests.integration.governor_client import call
from tests.integration.test_encoder_idle import switches
from titanium.common.bus import Subscriber
from titanium.common.endpoints import Endpoints
from titanium.common.messages import Heartbeat, QualityCommand


def wakeups_per_second(pid: int, seconds: float) -> float:
    before, t0 = switches(pid), time.monotonic()
    time.sleep(seconds)
    return (switches(pid) - before) / (time.monotonic() - t0)


def test_idle_governor_wakes_about_once_a_second_and_still_reads_the_board(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    """Pins the governor that read the CPU five times a second whatever the print state
    and woke for every heartbeat, camera status and viewer count (about 20 wake-ups a
    second, 0.26 ms per captured 720p frame measured): not printing, its threads wake a
    few times a second at most, and /status still shows fresh readings of every service."""
    stack = make_stack([{"device": "testpattern", "resolution": "640x480", "fps": 30}])
    pid = stack.status()["services"]["governor"]["pid"]
    time.sleep(2.0)  # past start-up and the first actuation
    idle = wakeups_per_second(pid, 4.0)
    gov = stack.status()["governor"]
    assert gov["printer"]["state"] != "printing"
    assert set(gov["readings"]["processes"]) >= {"capture-cam0", "encoder-cam0", "mjpeg"}
    assert gov["readings"]["cpu"] is not None
    # Its main thread once a second for the sample, the repeats and the heartbeat; the
    # ZeroMQ I/O thread for each message in or out (10 a second in all when measured, 22 before).
    assert idle < 15, f"{idle:.1f} wake-ups a second while idle"
    # Printing, the load rule reads the CPU every cpu_interval again.
    call(Endpoints(stack.runtime_dir).governor_rpc(), "print.state", state="printing", layer=5)
    time.sleep(1.5)
    assert stack.status()["governor"]["readings"]["cpu_short"] is not None


def main_thread_wakeups(pid: int) -> int:
    status = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("voluntary_ctxt_switches:"))
    return int(line.split()[1])


def test_idle_governor_main_thread_wakes_once_a_sample_and_repeats_on_restart(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins the governor whose main thread woke three times a second while idle (its
    sample, plus the bootstrap's loop-lag watchdog twice a second, each wake-up about
    0.2 ms of CPU on the test machine) and that published every QualityCommand again
    every second: now its main thread wakes once per sample_interval (1 s), the commands
    go out again only every 10 s or when a service comes back with a new PID, and the
    heartbeat still goes out every second."""
    stack = make_stack([{"device": "testpattern", "resolution": "640x480", "fps": 30}])
    services = stack.status()["services"]
    gov_pid, capture_pid = services["governor"]["pid"], services["capture-cam0"]["pid"]
    ctx = zmq.Context()
    sub = Subscriber(
        ctx, [Endpoints(stack.runtime_dir).governor_pub()], (Heartbeat, QualityCommand)
    )
    try:
        time.sleep(2.0)  # past start-up, the first actuation and the first repeats
        sub.drain()
        before, t0 = main_thread_wakeups(gov_pid), time.monotonic()
        time.sleep(5.0)
        rate = (main_thread_wakeups(gov_pid) - before) / (time.monotonic() - t0)
        heard = sub.drain()
        beats = sum(isinstance(m, Heartbeat) and m.service == "governor" for m in heard)
        commands = sum(isinstance(m, QualityCommand) for m in heard)
        assert rate < 2.0, f"main thread woke {rate:.1f} times a second while idle (3 before)"
        assert beats >= 3, f"{beats} governor heartbeats in 5 s"
        assert commands <= 2, f"{commands} QualityCommands in 5 s while nothing changed"
        # A capture that comes back (supervisord restarts it) hears its command at once.
        os.kill(capture_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        got = False
        while not got and time.monotonic() < deadline:
            if sub.socket.poll(500):
                got = any(isinstance(m, QualityCommand) for m in sub.drain())
        assert got, "no QualityCommand within 10 s of capture restarting"
    finally:
        sub.close()
        ctx.term()
