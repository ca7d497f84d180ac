"""The printer's state: pushed by Hydrogen over the control socket, and polled from
Moonraker where one is configured. A Moonraker that is down is logged once, retried at
the poll interval and never stops the governor."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from titanium.common.govconfig import MoonrakerConfig
from titanium.services.governor.policy import PrinterState

log = logging.getLogger("titanium.governor.printer")

PRINT_STATES = ("printing", "paused", "idle")
# Klipper's print_stats.state → ours. A finished, cancelled or failed print leaves the
# printer idle as far as the camera is concerned.
MOONRAKER_STATES = {
    "standby": "idle",
    "printing": "printing",
    "paused": "paused",
    "complete": "idle",
    "cancelled": "idle",
    "error": "idle",
}
QUERY = "/printer/objects/query?print_stats&virtual_sdcard"


def _rank(s: PrinterState) -> int:
    return {"printing": 2, "paused": 1, "idle": 0}.get(s.state, -1) + (1 if s.first_layer else 0)


class PrinterStates:
    """The state each source last reported. When sources disagree the busiest wins: a
    print that one of them sees running is protected."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_source: dict[str, tuple[PrinterState, float]] = {}

    def update(self, state: PrinterState | None, source: str) -> None:
        """A source's new state; None forgets it (Moonraker stopped answering)."""
        if state is None:
            self._by_source.pop(source, None)
        else:
            self._by_source[source] = (state, self._clock())

    def current(self) -> PrinterState:
        if not self._by_source:
            return PrinterState()
        return max((s for s, _ in self._by_source.values()), key=_rank)

    def describe(self) -> dict[str, Any]:
        cur = self.current()
        return {
            "state": cur.state,
            "first_layer": cur.first_layer,
            "layer": cur.layer,
            "progress": cur.progress,
            "source": cur.source,
            "sources": {
                name: {"state": s.state, "layer": s.layer, "updated": round(at, 3)}
                for name, (s, at) in self._by_source.items()
            },
        }


def from_hydrogen(
    state: str, first_layer: bool | None, layer: int | None, progress: float | None
) -> PrinterState:
    """What ``print.state`` says. Without ``first_layer``, layer 1 is the first layer."""
    if first_layer is None:
        first_layer = layer == 1
    return PrinterState(state, first_layer and state == "printing", layer, progress, "hydrogen")


def from_moonraker(doc: Any) -> PrinterState:
    """The reply to QUERY; ValueError when it is not one."""
    try:
        status = doc["result"]["status"]
        stats = status["print_stats"]
        raw = stats["state"]
    except (KeyError, TypeError):
        raise ValueError("no result.status.print_stats.state in Moonraker's reply") from None
    state = MOONRAKER_STATES.get(raw)
    if state is None:
        raise ValueError(f"unknown print_stats.state {raw!r}")
    info = stats.get("info") or {}
    layer = info.get("current_layer") if isinstance(info, dict) else None
    layer = layer if isinstance(layer, int) and not isinstance(layer, bool) else None
    progress = (status.get("virtual_sdcard") or {}).get("progress")
    progress = float(progress) if isinstance(progress, int | float) else None
    first = state == "printing" and layer == 1
    return PrinterState(state, first, layer, progress, "moonraker")


class MoonrakerPoller:
    """Polls Moonraker's print_stats; ``on_state`` gets each state, or None while it is
    not answering (so a stale "printing" does not outlive the host that said it)."""

    def __init__(
        self, config: MoonrakerConfig, on_state: Callable[[PrinterState | None], None]
    ) -> None:
        self.config = config
        self.on_state = on_state
        self.error = ""
        self.polls = 0

    async def poll(self, http: aiohttp.ClientSession) -> PrinterState:
        async with http.get(self.config.url + QUERY) as r:
            if r.status != 200:
                raise ValueError(f"HTTP {r.status}: {(await r.text())[:120]}")
            return from_moonraker(await r.json(content_type=None))

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                self.polls += 1
                try:
                    state = await self.poll(http)
                except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                    why = str(e) or type(e).__name__
                    if not self.error:
                        log.warning(
                            "Moonraker at %s is not answering (%s); retrying every %g s",
                            self.config.url,
                            why,
                            self.config.interval,
                        )
                    self.error = why
                    self.on_state(None)
                else:
                    if self.error:
                        log.info("Moonraker at %s answers again", self.config.url)
                    self.error = ""
                    self.on_state(state)
                await asyncio.sleep(self.config.interval)
