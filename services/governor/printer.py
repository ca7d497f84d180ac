"""The printer's state: pushed by Hydrogen over the control socket, and read from
Moonraker's answers where one is configured (moonraker.py polls it)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

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
