"""The print state from Moonraker: a small aiohttp stand-in on 127.0.0.1 (started and
stopped here) answers /printer/objects/query like Moonraker does; the governor polls it,
logs once while it is down, keeps going, and uses what it says when it answers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.integration.conftest import free_port
from tests.integration.governor_client import GovernorProcess


class MoonrakerStandIn:
    """Answers print_stats/virtual_sdcard queries from its attributes, in its own thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.state = "printing"
        self.layer: int | None = 1
        self.status = 200  # 503 is what Moonraker answers while Klippy is disconnected
        self.delay = 0.0
        self.queries = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _query(self, request: web.Request) -> web.Response:
        self.queries += 1
        assert "print_stats" in request.query
        await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response(
                {"error": {"code": self.status, "message": "Klippy Disconnected"}},
                status=self.status,
            )
        status = {
            "print_stats": {
                "state": self.state,
                "info": {"current_layer": self.layer, "total_layer": 120},
            },
            "virtual_sdcard": {"progress": 0.25, "is_active": True},
        }
        return web.json_response({"result": {"eventtime": time.monotonic(), "status": status}})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/printer/objects/query", self._query)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture
def governor(tmp_path: Path) -> Iterator[tuple[GovernorProcess, int]]:
    port = free_port()
    moonraker = {"url": f"http://127.0.0.1:{port}", "interval": 0.2, "timeout": 0.5}
    gov = GovernorProcess(tmp_path, {"sample_interval": 0.2, "moonraker": moonraker})
    yield gov, port
    assert gov.stop() == 0, gov.log()


def wait(gov: GovernorProcess, check: Callable[[dict[str, Any]], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check(gov.call("status")):
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {gov.call('status')}\n{gov.log()}")


def test_down_logged_once_then_its_state_is_used(governor: tuple[GovernorProcess, int]) -> None:
    gov, port = governor
    wait(gov, lambda st: st["moonraker"]["polls"] >= 4 and st["moonraker"]["error"])
    assert gov.log().count("is not answering") == 1, gov.log()
    assert gov.call("status")["printer"]["state"] == "unknown"
    gov.call("print.state", state="idle")  # Hydrogen says idle meanwhile

    standin = MoonrakerStandIn(port)
    try:
        wait(gov, lambda st: st["printer"]["source"] == "moonraker")
        st = gov.call("status")
        printer = st["printer"]
        assert (printer["state"], printer["first_layer"], printer["layer"]) == ("printing", True, 1)
        assert printer["progress"] == 0.25 and not st["moonraker"]["error"]
        # The busiest source wins: Moonraker's print is protected though Hydrogen said idle.
        wait(gov, lambda st: st["cameras"]["cam0"]["rung"] == "480p15")
        assert "answers again" in gov.log()

        standin.layer = 2
        wait(gov, lambda st: st["printer"]["layer"] == 2 and not st["printer"]["first_layer"])

        standin.status = 503  # Klippy disconnected: Moonraker answers, with an error
        wait(gov, lambda st: "503" in st["moonraker"]["error"])
        assert gov.call("status")["printer"]["source"] == "hydrogen"
        standin.status = 200
        wait(gov, lambda st: st["printer"]["source"] == "moonraker")

        standin.delay = 1.0  # slower than the timeout
        wait(gov, lambda st: st["moonraker"]["error"] != "")
        assert gov.proc.poll() is None
        standin.delay = 0.0
        wait(gov, lambda st: st["moonraker"]["error"] == "")
    finally:
        standin.stop()
    wait(gov, lambda st: st["printer"]["state"] == "idle" and st["moonraker"]["error"])
    assert gov.log().count("is not answering") == 4  # once per outage
