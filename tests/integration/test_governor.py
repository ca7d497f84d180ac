"""The governor on the running stack: heat and throttling from a sysfs tree pause the
stream and /status says why; a real CPU burner while printing steps quality down within
2 s and it comes back; viewers keep their connections across changes; every service's
affinity and scheduling read back from /proc match the config."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import simplejpeg

from tests.integration.conftest import Stack
from tests.integration.governor_client import Events, call
from tests.integration.mjpeg_client import Drain, MjpegClient
from tests.integration.rtc_client import Received, whep_view
from titanium.common.endpoints import Endpoints
from titanium.common.rpc import RpcClient
from titanium.services.governor.probes import CpuProbe

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VGA = [{"device": "testpattern", "resolution": "640x480", "fps": 30, "keyframe_interval": 30}]


def quiet_board(tmp: Path) -> dict[str, Any]:
    """Probes on empty trees: what this machine's own sensors say cannot move the test."""
    (tmp / "thermal").mkdir()
    return {
        "thermal_dir": str(tmp / "thermal"),
        "throttled_path": str(tmp / "get_throttled"),
        "vcgencmd": "no-such-vcgencmd",
        "psutil_sensors": False,
        "sample_interval": 0.25,
        "calm_time": 1.0,
    }


def endpoints(stack: Stack) -> Endpoints:
    return Endpoints(stack.runtime_dir)


def governed(stack: Stack, cam: str = "cam0") -> dict[str, Any]:
    doc: dict[str, Any] = stack.status()["governor"]["cameras"][cam]
    return doc


def sizes_of(viewer: MjpegClient, until: Callable[[tuple[int, int]], bool], timeout: float) -> None:
    """Read parts on one connection until a JPEG of the wanted size comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, jpeg = viewer.next_part()
        h, w = simplejpeg.decode_jpeg_header(jpeg)[:2]
        if until((w, h)):
            return
    raise AssertionError("no frame of the wanted size on this connection")


def test_heat_and_throttling_pause_with_reasons_then_resume(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    sysfs = tmp_path / "sys"
    shutil.copytree(FIXTURES / "pi4" / "sys", sysfs)
    temp = sysfs / "class" / "thermal" / "thermal_zone0" / "temp"
    throttled = sysfs / "devices" / "platform" / "soc" / "soc:firmware" / "get_throttled"
    throttled.write_text("0\n")  # the recorded board was under-volted; start healthy
    board = {**quiet_board(tmp_path), "thermal_dir": str(temp.parents[1])}
    stack = make_stack(VGA, governor={**board, "throttled_path": str(throttled)})
    events = Events(endpoints(stack).governor_pub())
    viewer = MjpegClient(stack.port)
    try:
        viewer.frames_for(0.5)
        temp.write_text("85000\n")
        stack.wait_for(lambda st: st["cameras"]["cam0"]["paused"], timeout=5)
        assert governed(stack)["reason"] == "heat: cpu-thermal 85.0 °C ≥ 80 °C"
        assert "heat: cpu-thermal 85.0 °C ≥ 80 °C" in stack.status()["governor"]["conditions"]
        paused = events.wait(lambda e: e.event == "stream.paused", 2)
        assert paused.camera == "cam0" and paused.reason.startswith("heat")
        # Same connection: the "paused" frame, at the lowest rung's size, once a second.
        sizes_of(viewer, lambda size: size == (480, 360), 5)

        temp.write_text("45000\n")
        stack.wait_for(lambda st: not st["cameras"]["cam0"]["paused"], timeout=5)
        events.wait(lambda e: e.event == "stream.resumed", 2)
        stack.wait_for(lambda st: st["governor"]["cameras"]["cam0"]["rung"] == "480p30", 10)
        sizes_of(viewer, lambda size: size == (640, 480), 5)

        throttled.write_text("50005\n")
        stack.wait_for(lambda st: st["cameras"]["cam0"]["paused"], timeout=5)
        assert governed(stack)["reason"] == "throttled: under_voltage, throttled"
        flags = stack.status()["governor"]["readings"]["throttled"]
        assert flags["now"] == ["under_voltage", "throttled"] and flags["value"] == "0x50005"
        throttled.write_text("50000\n")  # fine now; it happened since boot
        stack.wait_for(lambda st: not st["cameras"]["cam0"]["paused"], timeout=5)
        assert viewer.frames_for(0.5) > 0
    finally:
        viewer.close()
        events.close()


def test_cpu_burner_while_printing_steps_down_within_2s_and_quality_returns(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    """Needs the machine not saturated by others: quality returns only below cpu_low."""
    fast = {"step_down_after": 0.5, "calm_time": 1.5, "cpu_high": 90, "cpu_low": 80}
    stack = make_stack(VGA, governor={**quiet_board(tmp_path), **fast})
    rpc = endpoints(stack).governor_rpc()
    call(rpc, "print.state", state="printing", layer=5)
    stack.wait_for(lambda st: "calm" in st["governor"]["conditions"], timeout=10)
    events = Events(endpoints(stack).governor_pub())
    burners: list[subprocess.Popen[bytes]] = []
    try:
        started = time.time()
        for _ in os.sched_getaffinity(0):  # every CPU busy, whatever else runs
            burners.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        down = events.wait(lambda e: e.event == "quality.changed", 5)
        assert down.ts - started < 2.0, down
        assert down.reason.startswith("cpu ") and "while printing" in down.reason
        assert down.detail["previous"] == "480p30" and down.detail["rung"] == "480p15"
        events.wait(lambda e: e.detail.get("rung") == "360p5", 5)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    stopped = time.time()
    stack.wait_for(lambda st: st["governor"]["cameras"]["cam0"]["rung"] == "480p30", 20)
    ups = [e for e in events.seen if e.ts > stopped and e.event == "quality.changed"]
    assert [e.detail["rung"] for e in ups] == ["480p15", "480p30"], ups
    assert all(e.reason == "calm for 1.5 s" for e in ups)
    events.close()


class FrameSizes:
    """An MJPEG viewer in a thread noting each frame's capture timestamp and size."""

    def __init__(self, port: int) -> None:
        self.client = MjpegClient(port)
        self.frames: list[tuple[float, tuple[int, int]]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                headers, jpeg = self.client.next_part()
            except (OSError, ConnectionError):
                return
            h, w = simplejpeg.decode_jpeg_header(jpeg)[:2]
            self.frames.append((float(headers["x-timestamp"]), (w, h)))

    def first(self, size: tuple[int, int], timeout: float, after: float = 0.0) -> float:
        """Capture's timestamp of the first frame of ``size`` captured after ``after``,
        waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stamps = [ts for ts, got in list(self.frames) if got == size and ts > after]
            if stamps:
                return stamps[0]
            time.sleep(0.02)
        raise AssertionError(f"no {size} frame in {timeout} s")

    def close(self) -> None:
        self.client.close()
        self._thread.join(5)


def _burn() -> list[subprocess.Popen[bytes]]:
    """Every CPU busy, whatever else runs."""
    code = "while True: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in os.sched_getaffinity(0)]


def _stop(burners: list[subprocess.Popen[bytes]]) -> None:
    for burner in burners:
        burner.kill()
        burner.wait()


def _busy_time(seconds: float, above: float) -> float:
    """Seconds, in 0.1 s windows of /proc/stat, that the machine was busier than
    ``above`` % during the next ``seconds``."""
    probe = CpuProbe()
    probe.read()
    busy = 0.0
    for _ in range(round(seconds / 0.1)):
        time.sleep(0.1)
        reading = probe.read()
        busy += 0.1 if reading is not None and reading.total > above else 0.0
    return busy


def _blip_moves_nothing(stack: Stack, events: Events, viewer: FrameSizes) -> bool:
    """A one-second burst of every CPU; False when others' work on this shared machine
    kept it busy past the burst, so the burst was not a blip and proves nothing."""
    before, started = len(events.seen), time.time()
    burners = _burn()
    busy: list[float] = []
    watch = threading.Thread(target=lambda: busy.append(_busy_time(4.0, 80)))
    watch.start()
    time.sleep(1.0)
    _stop(burners)
    watch.join()
    if busy[0] > 1.3:
        return False
    changes = [
        e
        for e in events.seen[before:]
        if e.event == "quality.changed" and e.detail["previous"] == "480p15"
    ]
    assert changes == [] and governed(stack)["rung"] == "480p15", (busy, changes)
    assert {size for ts, size in viewer.frames if ts > started} == {(640, 480)}
    return True


def test_load_reaches_capture_within_2s_at_default_timing_and_a_1s_blip_moves_nothing(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    """Pins: at the default timing the first step reached capture about 4.5 s after the
    load began (a 1 s CPU window, 3 s of hold, and capture's status up to a second
    behind), while the 2 s test above passed only on sped-up settings. Measured here from
    the burners' start to the first frame capture made at the new rung's size, as a
    viewer receives it; and a one-second blip must not step at all."""
    board = {k: v for k, v in quiet_board(tmp_path).items() if k != "sample_interval"}
    camera = {"device": "testpattern", "resolution": "640x480", "fps": 15}
    stack = make_stack([camera], governor={**board, "cpu_high": 90, "cpu_low": 80})
    call(endpoints(stack).governor_rpc(), "print.state", state="printing", layer=5)

    def calm(st: dict[str, Any]) -> bool:
        gov = st["governor"]
        return "calm" in gov["conditions"] and gov["cameras"]["cam0"]["rung"] == "480p15"

    stack.wait_for(calm, 15)
    events = Events(endpoints(stack).governor_pub())
    viewer = FrameSizes(stack.port)
    burners: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(5):
            if _blip_moves_nothing(stack, events, viewer):
                break
            stack.wait_for(calm, 15)
        else:
            raise AssertionError("others kept this machine busy past every 1 s burst")

        stack.wait_for(calm, 15)
        before = len(events.seen)
        started = time.time()
        burners = _burn()
        delivered = viewer.first((480, 360), 10, after=started) - started
        down = events.wait(lambda e: e.event == "quality.changed", 1, after=before)
        assert down.detail["rung"] == "360p5" and "while printing" in down.reason, down
        assert delivered <= 2.0, f"capture delivered 360p5 {delivered:.2f} s after the load"
    finally:
        _stop(burners)
        viewer.close()
        events.close()


def test_viewers_keep_their_connections_across_quality_changes(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = make_stack(VGA, governor=quiet_board(tmp_path))
    mjpeg_sizes: list[tuple[int, int]] = []
    viewer = MjpegClient(stack.port)

    def watch_mjpeg() -> None:
        end = time.monotonic() + 8.5
        while time.monotonic() < end:
            _, jpeg = viewer.next_part()
            h, w = simplejpeg.decode_jpeg_header(jpeg)[:2]
            if not mjpeg_sizes or mjpeg_sizes[-1] != (w, h):
                mjpeg_sizes.append((w, h))

    reader = threading.Thread(target=watch_mjpeg)
    reader.start()

    async def scenario() -> tuple[Received, int, int]:
        import zmq.asyncio

        ctx = zmq.asyncio.Context()
        gov = RpcClient(ctx, endpoints(stack).governor_rpc())
        watching = asyncio.ensure_future(whep_view(stack.base, 9.0, timecode=True))
        await asyncio.sleep(3.0)
        before = stack.status()["cameras"]["cam0"]["encoder"]["keyframes"]
        await gov.call("quality.set", camera="cam0", rung="360p5")
        await asyncio.sleep(3.0)
        await gov.call("quality.set", camera="cam0", rung="480p30")
        await asyncio.sleep(1.5)
        after = stack.status()["cameras"]["cam0"]["encoder"]["keyframes"]
        got = await watching
        gov.close()
        ctx.term()
        return got, before, after

    got, before, after = asyncio.run(asyncio.wait_for(scenario(), 60))
    reader.join(15)
    viewer.close()
    assert got.sizes == [(640, 480), (480, 360), (640, 480)], got.sizes
    assert mjpeg_sizes == [(640, 480), (480, 360), (640, 480)], mjpeg_sizes
    # One session throughout, never stalled: 5 fps at the lowest rung is 0.2 s apart.
    gaps = [b - a for a, b in zip(got.capture_times, got.capture_times[1:], strict=False)]
    assert got.capture_times and max(gaps) < 1.0, max(gaps)
    assert after - before >= 2, "a keyframe after each change (keyframe_interval is 30 s)"


def test_affinity_and_scheduling_read_back_from_proc(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    printer = cpus[-1] if len(cpus) > 1 else None
    ours = set(cpus) - {printer}
    camera = {"device": "testpattern", "resolution": "640x480", "cpu": cpus[0]}
    camera.update(realtime_priority=5, priority="low")
    governor = {**quiet_board(tmp_path), "printer_cpus": [printer] if printer is not None else []}
    stack = make_stack([camera], governor={**governor, "nice": 7, "ionice": "idle"})
    names = ("capture-cam0", "encoder-cam0", "webrtc", "mjpeg", "governor")

    def applied(st: dict[str, Any]) -> bool:
        done = st["governor"]["actuation"]
        return all(done.get(n, {}).get("ok") for n in names)

    stack.wait_for(applied, timeout=10)
    services = stack.status()["services"]
    idle_io = (3, 0)  # IOPRIO_CLASS_IDLE
    wanted = {
        "capture-cam0": ({cpus[0]}, os.SCHED_FIFO, 5, None, None),
        "encoder-cam0": (ours, os.SCHED_IDLE, 0, 7, idle_io),  # a low-priority camera
        "webrtc": (ours, os.SCHED_OTHER, 0, 7, idle_io),
        "mjpeg": (ours, os.SCHED_OTHER, 0, 7, idle_io),
        "governor": (ours, os.SCHED_OTHER, 0, 0, None),
    }
    import psutil

    for name, (want_cpus, policy, prio, nice, io) in wanted.items():
        pid = services[name]["pid"]
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        assert tasks, name
        for task in tasks:
            stat = (task / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            allowed = next(
                line.split(":")[1].strip()
                for line in (task / "status").read_text().splitlines()
                if line.startswith("Cpus_allowed_list")
            )
            got = _cpu_list(allowed), int(fields[38]), int(fields[37])
            assert got == (want_cpus, policy, prio), (name, task.name, got)
            if nice is not None:
                assert int(fields[16]) == nice, (name, task.name)
            if io is not None:
                assert tuple(psutil.Process(int(task.name)).ionice()) == io, (name, task.name)


def _cpu_list(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


async def _whep_session(base: str, query: str) -> tuple[Any, int]:
    """A WHEP viewer that only connects: (peer connection, HTTP status of the offer)."""
    import aiohttp
    from aiortc import RTCSessionDescription

    from tests.integration.rtc_client import recvonly_offer

    pc = await recvonly_offer()
    headers = {"Content-Type": "application/sdp"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/whep{query}", data=pc.localDescription.sdp, headers=headers) as r,
    ):
        if r.status == 201:
            await pc.setRemoteDescription(RTCSessionDescription(await r.text(), "answer"))
        return pc, r.status


def test_low_priority_viewers_are_shed_in_a_critical_phase_and_served_after(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = make_stack(VGA, governor=quiet_board(tmp_path))
    rpc = endpoints(stack).governor_rpc()
    events = Events(endpoints(stack).governor_pub())
    low = Drain(MjpegClient(stack.port, "/stream?priority=low"))
    medium = MjpegClient(stack.port, "/stream")
    assert MjpegClient(stack.port, "/stream?priority=urgent").status_line.endswith(
        "400 Bad Request"
    )

    async def scenario() -> None:
        import zmq.asyncio

        ctx = zmq.asyncio.Context()
        gov = RpcClient(ctx, rpc)
        pc, status = await _whep_session(stack.base, "?priority=low")
        assert status == 201
        await asyncio.to_thread(stack.wait_for, lambda st: len(st["webrtc"]["sessions"]) == 1)
        assert stack.status()["webrtc"]["sessions"][0]["priority"] == "low"
        await asyncio.sleep(0.3)
        assert low.bytes > 0 and not low.ended.is_set()
        await gov.call("print.state", state="printing", layer=1)  # the first layer: critical
        await asyncio.to_thread(stack.wait_for, lambda st: st["webrtc"]["sessions"] == [], 5)
        assert await asyncio.to_thread(low.ended.wait, 5), "the low MJPEG viewer is shed"
        refused, status = await _whep_session(stack.base, "?priority=low")
        assert status == 503
        await refused.close()
        await gov.call("print.state", state="printing", layer=2)
        again, status = await _whep_session(stack.base, "?priority=low")
        assert status == 201
        for peer in (again, pc):
            await peer.close()
        gov.close()
        ctx.term()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
        events.wait(lambda e: e.event == "viewer.left" and e.detail["priority"] == "low", 5)
        assert medium.frames_for(0.5) > 0, "medium-priority viewers are served throughout"
        adm = [e for e in events.seen if e.event == "admission.changed"]
        assert [e.detail["min_priority"] for e in adm] == ["medium", "low"]
        assert adm[0].reason == "first layer"
    finally:
        for client in (low.client, medium):
            client.close()
        events.close()
