"""The governor's settings survive its death: a camera paused and another set to a lower
rung by hand stay so when the governor is killed with SIGKILL and supervisord starts it
again, and capture follows the restarted governor (issue 14, "nothing lost")."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.conftest import Stack
from tests.integration.governor_client import GovernorProcess, call
from titanium.common.endpoints import Endpoints

CAMERAS = [
    {"id": "bed", "device": "testpattern", "resolution": "640x480", "fps": 15},
    {"id": "nozzle", "device": "testpattern", "resolution": "640x480", "fps": 15},
]


def governor_pid(st: dict[str, Any]) -> int | None:
    pid = st["services"].get("governor", {}).get("pid")
    return pid if isinstance(pid, int) else None


def test_pause_and_quality_survive_a_killed_governor(make_stack: Callable[..., Stack]) -> None:
    """Pins: the settings lived only in the governor's memory, so its restart sent every
    camera back to its configured quality and a paused camera streamed again."""
    stack = make_stack(CAMERAS, governor={"psutil_sensors": False, "sample_interval": 0.25})
    rpc = Endpoints(stack.runtime_dir).governor_rpc()
    call(rpc, "stream.pause", camera="bed", by="tests")
    rung = call(rpc, "quality.set", camera="nozzle", rung="360p5")["cameras"]["nozzle"]
    size = (rung["width"], rung["height"])
    stack.wait_for(lambda st: st["cameras"]["bed"]["paused"], 5, "bed paused")
    stack.wait_for(
        lambda st: (st["cameras"]["nozzle"]["width"], st["cameras"]["nozzle"]["height"]) == size,
        5,
        "nozzle at 360p5",
    )

    old = governor_pid(stack.status())
    assert old is not None
    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()

    def restarted(st: dict[str, Any]) -> bool:
        pid = governor_pid(st)
        gov = st["governor"].get("cameras")
        return pid not in (None, old) and gov is not None and gov["bed"].get("rung") is not None

    back = stack.wait_for(restarted, 15, "a new governor answering")
    gov = stack.status()["governor"]["cameras"]
    assert gov["bed"]["manual_pause"] and gov["bed"]["reason"] == "paused by tests", gov["bed"]
    assert gov["nozzle"]["mode"] == "manual" and gov["nozzle"]["rung"] == "360p5", gov["nozzle"]
    # The new governor's commands reached capture: past its first decision (sent at
    # once) and a repeat, bed is still paused and nozzle still at the rung set by hand.
    time.sleep(1.5)
    st = stack.status()
    assert st["cameras"]["bed"]["paused"], st["cameras"]["bed"]
    nozzle = st["cameras"]["nozzle"]
    assert (nozzle["width"], nozzle["height"]) == size, nozzle
    print(f"governor killed → new one answering in {back - killed:.1f} s")

    # Ending them is saved too: after another kill, bed streams and nozzle is automatic.
    call(rpc, "stream.resume", camera="bed")
    call(rpc, "quality.auto", camera="nozzle")
    again = governor_pid(stack.status())
    assert again is not None
    os.kill(again, signal.SIGKILL)
    old = again
    stack.wait_for(restarted, 15, "a new governor answering")
    gov = stack.status()["governor"]["cameras"]
    assert not gov["bed"]["manual_pause"] and gov["nozzle"]["mode"] == "auto", gov
    stack.wait_for(lambda st: not st["cameras"]["bed"]["paused"], 5, "bed streaming")


def test_settings_of_a_camera_gone_from_the_config_are_ignored_with_a_log_line(
    tmp_path: Path,
) -> None:
    board = {"sample_interval": 0.2}
    cams = [{**c, "resolution": "640x480"} for c in CAMERAS]
    gov = GovernorProcess(tmp_path, board, cams)
    try:
        gov.call("stream.pause", camera="nozzle", by="tests")
        gov.call("quality.set", camera="bed", rung="360p5")
    finally:
        assert gov.stop() == 0, gov.log()
    gov = GovernorProcess(tmp_path, board, cams[:1])
    try:
        bed = gov.call("status")["cameras"]["bed"]
        assert (bed["mode"], bed["rung"]) == ("manual", "360p5"), bed
        deadline = time.monotonic() + 5
        while "settings of camera 'nozzle' ignored" not in gov.log():
            assert time.monotonic() < deadline, gov.log()
            time.sleep(0.05)
    finally:
        assert gov.stop() == 0, gov.log()
