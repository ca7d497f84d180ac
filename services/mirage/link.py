"""The printer's one WebSocket to its Mirage proxy, dialled out and kept up
(docs/mirage-protocol.md): hello with the device's credentials and cameras, welcome, then
the proxy's signalling through a :class:`Relay` until the connection ends; then again, after
a jittered backoff."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from titanium.common.config import Config
from titanium.common.rpc import RpcClient
from titanium.services.mirage.relay import Relay

log = logging.getLogger("titanium.mirage")

MAX_MSG = 64 * 1024
CONNECT_TIMEOUT = 10.0
# The proxy pings every 15 s; our own pings find a proxy that vanished without a close
# (a NAT that dropped the mapping), where TCP alone would wait for minutes.
PING = 20.0
CLOSE_BAD_CREDENTIALS = 4401
CLOSE_REMOVED = 4403
CLOSE_REPLACED = 4409
REFUSED = {
    CLOSE_BAD_CREDENTIALS: "the proxy refused this printer's credentials: check mirage.device "
    "id and secret against `titaniumctl mirage list-devices` on the proxy",
    CLOSE_REMOVED: "this device was removed at the proxy: add it again "
    "(`titaniumctl mirage add-device`) and put the new id and secret in mirage.device",
}


class Backoff:
    """Seconds to wait before the next dial: 0.5 doubling to 30, each wait jittered down
    to 3/4 of it so that printers cut off together do not return together; back to 0.5 after
    a connection that lasted ``steady`` seconds. A refusal (bad credentials, removed) waits
    the longest: retrying fast cannot fix a config."""

    FIRST = 0.5
    CEILING = 30.0

    def __init__(self, steady: float = 10.0, rand: Callable[[], float] = random.random) -> None:
        self.steady = steady
        self._rand = rand
        self._delay = self.FIRST

    def next(self, lasted: float, refused: bool = False) -> float:
        if lasted >= self.steady:
            self._delay = self.FIRST
        delay = self.CEILING if refused else self._delay
        if not refused:
            self._delay = min(self.CEILING, self._delay * 2)
        return delay * (0.75 + 0.25 * self._rand())


class Link:
    """``connect_timeout`` bounds the dial up to the welcome: a proxy that takes the TCP
    connection and then says nothing (overloaded, or not a proxy) must not hold the link."""

    def __init__(
        self, config: Config, rpc: RpcClient, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        self._link = config.mirage_link
        self._timeout = connect_timeout
        self._cameras = [c.id for c in config.cameras]
        self._rpc = rpc
        self._ssl: ssl.SSLContext | None = None
        if self._link.scheme == "wss":
            self._ssl = ssl.create_default_context(cafile=self._link.ca_file or None)
        self.connected_since: float | None = None  # wall clock
        self.last_error = ""
        self.attempts = 0  # dials that ended
        self._welcomed: float | None = None  # monotonic
        self.backoff = Backoff()

    def describe(self) -> str:
        """The link state for /status (the heartbeat's detail)."""
        if self.connected_since is not None:
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.connected_since))
            return f"connected to {self._link.url} since {since}"
        return f"not connected to {self._link.url}: {self.last_error or 'dialling'}"

    async def run(self) -> None:
        log.info("dialling %s as device %s", self._link.url, self._link.device_id)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
            while True:
                code = await self._once(http)
                # How long it was welcomed: a dial that took long to fail is no steady link.
                welcomed, self._welcomed = self._welcomed, None
                lasted = time.monotonic() - welcomed if welcomed is not None else 0.0
                self.attempts += 1
                wait = self.backoff.next(lasted, refused=code in REFUSED)
                log.info("re-dialling in %.1f s", wait)
                await asyncio.sleep(wait)

    async def _once(self, http: aiohttp.ClientSession) -> int | None:
        """One connection, from dial to loss; its close code (None without one)."""
        try:
            ws = await asyncio.wait_for(
                http.ws_connect(
                    self._link.url,
                    ssl=self._ssl if self._ssl is not None else True,
                    heartbeat=PING,
                    max_msg_size=MAX_MSG,
                    autoping=True,
                ),
                self._timeout,
            )
        except TimeoutError:
            self._lost(f"no WebSocket handshake within {self._timeout:g} s")
            return None
        except (aiohttp.ClientError, OSError) as e:
            self._lost(f"cannot connect: {_reason(e)}")
            return None
        async with ws:
            await ws.send_json(
                {
                    "type": "hello",
                    "device": self._link.device_id,
                    "secret": self._link.secret,
                    "cameras": self._cameras,
                    "version": 1,
                }
            )
            try:
                msg = await ws.receive(timeout=self._timeout)
            except TimeoutError:
                self._lost(f"no welcome within {self._timeout:g} s")
                return None
            if msg.type != aiohttp.WSMsgType.TEXT or _type(msg.data) != "welcome":
                return self._closed(ws, msg)
            self.connected_since = time.time()
            self._welcomed = time.monotonic()
            self.last_error = ""
            log.info("online at %s as device %s", self._link.url, self._link.device_id)
            relay = Relay(self._rpc, ws.send_json)
            watcher = asyncio.ensure_future(relay.watch())
            try:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    try:
                        doc = json.loads(msg.data)
                    except ValueError:
                        log.warning("dropped a message from the proxy that is not JSON")
                        continue
                    await relay.handle(doc)
            finally:
                watcher.cancel()
                if ws.close_code == CLOSE_REMOVED:
                    # A lost link keeps its flowing video; a removed device must not.
                    await relay.close_all()
                relay.close()
            return self._closed(ws, None)

    def _closed(self, ws: aiohttp.ClientWebSocketResponse, msg: aiohttp.WSMessage | None) -> int:
        code = ws.close_code
        reason = str(msg.extra) if msg is not None and msg.extra else ""
        if code in REFUSED:
            log.error("%s (closed %s: %s)", REFUSED[code], code, reason or "no reason")
            self._lost(f"refused ({code} {reason})".strip(), quiet=True)
        elif code == CLOSE_REPLACED:
            self._lost(
                "replaced by a newer connection of the same device (4409): is this "
                "device id configured on two printers?"
            )
        else:
            self._lost(f"connection closed ({code})")
        return code or 0

    def _lost(self, why: str, quiet: bool = False) -> None:
        if not quiet:
            log.warning("%s: %s", self._link.url, why)
        self.connected_since = None
        self.last_error = why


def _type(data: Any) -> Any:
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc.get("type") if isinstance(doc, dict) else None


def _reason(e: BaseException) -> str:
    """One line: what the OS or TLS said, no Python class names in the log's headline."""
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:200]
