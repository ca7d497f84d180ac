"""The Mirage proxy's HTTP server: where printers dial in (``/device``), where viewers signal
(``/d/DEVICE/whep/CAMERA``, mirage/whep.py) and how it is doing (``/health``). The routing
between the two is mirage/hub.py; the wire protocol is docs/mirage-protocol.md.

``GET /health`` → ``{"ok": true, "devices_online": N, "devices": [ID, ...],
"cameras": {ID: [CAMERA, ...]}, "sessions": N}``

``/device`` (WebSocket): the device's first message is
``{"type": "hello", "device": ID, "secret": SECRET, "cameras": [...]}``, answered
``{"type": "welcome"}``. Close codes, with the reason as the close message:

- 4400 — the first message was not a hello (or not JSON), or none came in time
- 4401 — unknown device id or wrong secret ("bad device credentials": which one is not said)
- 4403 — "device removed": ``titaniumctl mirage remove-device`` ran while it was connected
- 4409 — the same device connected again; the newer connection wins
- 4429 — the device sent more messages than ``limits.device_messages_rate`` allows

``/admin/…``: the admin API (mirage/admin.py), only with ``admin_key`` in the config.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl
import time
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from titanium.common.tokens import Tokens
from titanium.mirage import admin, pages, whep
from titanium.mirage.config import ProxyConfig
from titanium.mirage.devices import Devices
from titanium.mirage.hub import MAX_MSG, Hub, Link
from titanium.mirage.limits import ProxyLimiter

log = logging.getLogger("mirage")

HEARTBEAT = 15.0  # seconds between pings; a silent device is dropped after a missed pong
HELLO_TIMEOUT = 10.0
# How often the registry is re-read for removals and the token database for revocations:
# the issue asks for cut-off within 2 s.
REMOVAL_POLL = 0.5
MAX_CAMERAS = 32

CLOSE_BAD_HELLO = 4400
CLOSE_BAD_CREDENTIALS = 4401
CLOSE_REMOVED = 4403
CLOSE_REPLACED = 4409
CLOSE_FLOOD = 4429

DEVICES_KEY = web.AppKey("devices", Devices)
HUB_KEY = web.AppKey("hub", Hub)
TOKENS_KEY = web.AppKey("tokens", Tokens)


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    await ws.close(code=code, message=reason.encode())


def _cameras(value: object) -> tuple[str, ...] | None:
    if value is None:
        return ()
    if (
        not isinstance(value, list)
        or len(value) > MAX_CAMERAS
        or not all(isinstance(c, str) and 0 < len(c) <= 64 and c.isprintable() for c in value)
    ):
        return None
    return tuple(value)


async def _hello(ws: web.WebSocketResponse) -> tuple[str, str, tuple[str, ...]] | None:
    """The (id, secret, cameras) of the first message, or None after closing with 4400."""
    try:
        msg = await ws.receive(timeout=HELLO_TIMEOUT)
    except TimeoutError:
        await _close(ws, CLOSE_BAD_HELLO, "no hello within 10 s")
        return None
    if msg.type != WSMsgType.TEXT:
        if not ws.closed:
            await _close(ws, CLOSE_BAD_HELLO, "expected a JSON hello message")
        return None
    try:
        doc = json.loads(msg.data)
    except ValueError:
        doc = None
    if (
        not isinstance(doc, dict)
        or doc.get("type") != "hello"
        or not isinstance(doc.get("device"), str)
        or not isinstance(doc.get("secret"), str)
        or _cameras(doc.get("cameras")) is None
    ):
        await _close(
            ws,
            CLOSE_BAD_HELLO,
            'expected {"type":"hello","device":ID,"secret":S,"cameras":[up to 32 names]}',
        )
        return None
    return doc["device"], doc["secret"], _cameras(doc.get("cameras")) or ()


async def device_ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_MSG)
    await ws.prepare(request)
    hello = await _hello(ws)
    if hello is None:
        return ws
    device_id, secret, cameras = hello
    devices = request.app[DEVICES_KEY]
    # SQLite opens and reads off the loop, so other devices keep being served.
    device = await asyncio.get_running_loop().run_in_executor(
        None, devices.verify, device_id, secret
    )
    if device is None:
        log.info("refused a device from %s: bad credentials", request.remote)
        await _close(ws, CLOSE_BAD_CREDENTIALS, "bad device credentials")
        return ws
    hub = request.app[HUB_KEY]
    link = Link(device.id, ws, cameras)
    old = hub.online.get(device.id)
    hub.online[device.id] = link
    if old is not None:
        await _close(old.ws, CLOSE_REPLACED, "replaced by a newer connection")
    log.info(
        "device %s (%s) online from %s, cameras %s",
        device.id,
        device.name,
        request.remote,
        ",".join(cameras) or "none",
    )
    await ws.send_json({"type": "welcome"})
    limits = request.app[whep.VIEWERS_KEY].limits
    try:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
            flood = limits.device_message(device.id)
            if flood is not None:
                log.info("device %s closed: %s", device.id, flood)
                await _close(ws, CLOSE_FLOOD, flood)
                break
            if msg.type == WSMsgType.TEXT:
                await hub.receive(link, msg.data)
    finally:
        hub.drop(link)
        log.info("device %s offline (close code %s)", device.id, ws.close_code)
    return ws


async def health(request: web.Request) -> web.Response:
    return web.json_response(request.app[HUB_KEY].describe())


async def _watch_removals(app: web.Application) -> None:
    devices, hub = app[DEVICES_KEY], app[HUB_KEY]
    loop = asyncio.get_running_loop()
    # A device removed before this started cannot log in: only later removals matter.
    since = time.time()
    while True:
        await asyncio.sleep(REMOVAL_POLL)
        try:
            removed, since = await loop.run_in_executor(None, devices.removed_since, since)
        except Exception:
            log.exception("cannot read the device registry")
            continue
        for device_id, link in list(hub.online.items()):
            if device_id in removed:
                log.info("device %s removed: closing its connection", device_id)
                hub.drop(link)
                await _close(link.ws, CLOSE_REMOVED, "device removed")


async def _watch_revocations(app: web.Application) -> None:
    """Revocations by ``titaniumctl mirage revoke`` (another process) and expiries end live
    sessions; refreshing also keeps verify()'s cached revoked set current for new requests."""
    tokens, hub = app[TOKENS_KEY], app[HUB_KEY]
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(REMOVAL_POLL)
        try:
            revoked = await loop.run_in_executor(None, tokens.refresh)
        except Exception:
            log.exception("cannot read the token database")
            continue
        if revoked:
            await hub.revoked(revoked)
        # A token's expiry is inside it, not in the database: its sessions are ended here.
        await hub.expired(time.time())


async def _removals_ctx(app: web.Application) -> Any:
    tasks = [
        asyncio.create_task(_watch_removals(app)),
        asyncio.create_task(_watch_revocations(app)),
    ]
    yield
    for task in tasks:
        task.cancel()
    for link in list(app[HUB_KEY].online.values()):
        await link.ws.close(code=WSCloseCode.GOING_AWAY, message=b"proxy shutting down")


def make_app(config: ProxyConfig) -> web.Application:
    app = web.Application(client_max_size=whep.MAX_BODY, middlewares=[whep.cors])
    hub = Hub(config.signal_timeout)
    tokens = Tokens(config.state_dir)
    devices = app[DEVICES_KEY] = Devices(config.state_dir)
    app[HUB_KEY] = hub
    app[TOKENS_KEY] = tokens
    limits = ProxyLimiter(config.limits, config.trusted_proxies)
    app[whep.VIEWERS_KEY] = whep.Viewers(hub, tokens, config.turn, limits)
    app.router.add_get("/health", health)
    app.router.add_get("/device", device_ws)
    whep.add_routes(app)
    pages.add_routes(app)
    if config.admin_key is not None:
        admin.add_routes(app, admin.Admin(config.admin_key, tokens, devices, hub, limits))
    app.cleanup_ctx.append(_removals_ctx)
    return app


def _ssl(config: ProxyConfig) -> ssl.SSLContext | None:
    if config.tls is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(config.tls.cert, config.tls.key)
    return ctx


async def serve(config: ProxyConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    ctx = _ssl(config)
    Devices(config.state_dir).list()  # creates the database now, not on the first device
    runner = web.AppRunner(make_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.listen.host or None, config.listen.port, ssl_context=ctx)
    await site.start()
    scheme = "wss" if ctx else "ws"
    log.info("Mirage proxy listening on %s://%s/device", scheme, config.listen)
    if ctx is None:
        log.warning(
            "no tls in %s: serving plain ws://, device secrets cross the network in clear "
            "(only behind a TLS-terminating reverse proxy or on a trusted network)",
            config.source,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
