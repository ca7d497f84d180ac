"""1,000 idle printers in one asyncio process: each dials the proxy's ``/device`` WebSocket,
says hello with its own registered id and secret and then only answers pings, as an idle
printer does. The light client of benchmarks/mirage.py, in a process of its own so that its
CPU is not the proxy's.

    python -m benchmarks.mirage_fleet WS_URL CREDENTIALS_JSON

Prints ``welcomed N refused M`` once every device has had its answer, then holds the
connections until stdin closes or SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import aiohttp

CONCURRENT_DIALS = 50  # a proxy restart's reconnect storm, kept to what a 2-core box takes
HELLO_BOUND = 30.0


async def _one(
    http: aiohttp.ClientSession, url: str, device: dict[str, str], gate: asyncio.Semaphore
) -> aiohttp.ClientWebSocketResponse | None:
    async with gate:
        try:
            ws = await http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5))
            hello = {"type": "hello", "device": device["id"], "secret": device["secret"]}
            await ws.send_json({**hello, "cameras": ["cam0"], "version": 1})
            msg = await ws.receive(timeout=HELLO_BOUND)
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None
        if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("type") == "welcome":
            return ws
        await ws.close()
        return None


async def _hold(ws: aiohttp.ClientWebSocketResponse) -> None:
    # Reading is what makes aiohttp answer the proxy's pings.
    async for _ in ws:
        pass


async def main(url: str, devices: list[dict[str, Any]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 1):  # closed: the benchmark is gone
            stop.set()

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    gate = asyncio.Semaphore(CONCURRENT_DIALS)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        results = await asyncio.gather(*(_one(http, url, d, gate) for d in devices))
        held = [ws for ws in results if ws is not None]
        print(f"welcomed {len(held)} refused {len(results) - len(held)}", flush=True)
        tasks = [asyncio.create_task(_hold(ws)) for ws in held]
        await stop.wait()
        for ws in held:
            await ws.close()
        for task in tasks:
            task.cancel()


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        creds = json.load(f)
    asyncio.run(main(sys.argv[1], creds))
