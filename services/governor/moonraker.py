"""Moonraker, polled for the print state where ``governor.moonraker.url`` names one. A
Moonraker that is down is logged once, retried at the poll interval and never stops the
governor. Its own module, imported only when configured: aiohttp is megabytes the governor
does not need otherwise."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from titanium.common.govconfig import MoonrakerConfig
from titanium.services.governor.policy import PrinterState
from titanium.services.governor.printer import QUERY, from_moonraker

log = logging.getLogger("titanium.governor.printer")


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
