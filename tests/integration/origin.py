"""A second origin for browser tests: printer UIs are served from another origin than
Titanium (Mainsail on port 80, Titanium on 8080), so their pages' requests are cross-origin."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from tests.stack import free_port


class OtherOrigin:
    """A page server on another port of 127.0.0.1: a different origin from Titanium's."""

    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None
        threading.Thread(target=self._serve, daemon=True).start()
        assert self._started.wait(10), "the other origin's server did not start"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>printer UI</title>", content_type="text/html"
        )

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/", self._page)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
