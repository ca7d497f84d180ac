"""The proxy's admin HTTP API, for Hydrogen and scripts: what ``titaniumctl mirage token``,
``revoke``, ``add-device``, ``list-devices`` and ``remove-device`` do, over HTTP.

- ``POST /admin/tokens`` ``{"devices": [ID, ...], "cameras"?: [...], "ttl"?: "1h" or
  seconds, "name"?: "..."}`` → 201 ``{"token", "id", "expires"}``
- ``GET /admin/tokens`` → every token issued (never the token itself), newest first
- ``DELETE /admin/tokens/ID`` → revoked; its live sessions end at once
- ``POST /admin/devices`` ``{"name": "..."}`` → 201 ``{"id", "name", "secret", "added"}``
  (the secret is shown this once)
- ``GET /admin/devices``; ``DELETE /admin/devices/ID`` → the device is cut off within 2 s

Every request carries ``Authorization: Bearer ADMIN_KEY`` (the proxy config's
``admin_key``); without a key in the config none of these routes exist (404). Requests are
rate limited per address, refused ones included, so the key cannot be guessed at speed.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from titanium.common.tokens import Tokens, parse_ttl
from titanium.mirage.devices import Devices
from titanium.mirage.hub import Hub
from titanium.mirage.limits import LimitError, ProxyLimiter

log = logging.getLogger("mirage.admin")

MAX_BODY = 16 * 1024
MAX_ITEMS = 64
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Admin:
    def __init__(
        self, key: str, tokens: Tokens, devices: Devices, hub: Hub, limits: ProxyLimiter
    ) -> None:
        self.key = key.encode()
        self.tokens = tokens
        self.devices = devices
        self.hub = hub
        self.limits = limits


ADMIN_KEY = web.AppKey("admin", Admin)


def _error(status: int, reason: str) -> web.HTTPException:
    exc = web.HTTPException(text=reason, content_type="text/plain")
    exc.set_status(status)
    return exc


def _authorized(admin: Admin, request: web.Request) -> None:
    try:
        admin.limits.admin_request(admin.limits.client(request))
    except LimitError as e:
        raise e.response() from None
    auth = request.headers.get("Authorization", "")
    given = auth[7:].strip().encode() if auth[:7].lower() == "bearer " else b""
    if not hmac.compare_digest(given, admin.key):
        exc = _error(401, "this needs the admin key (Authorization: Bearer ADMIN_KEY)")
        exc.headers["WWW-Authenticate"] = 'Bearer realm="mirage-admin"'
        raise exc


def guarded(handler: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        _authorized(request.app[ADMIN_KEY], request)
        return await handler(request)

    return wrapper


async def _json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise _error(400, "expected Content-Type: application/json")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _error(413, f"the body is over {MAX_BODY // 1024} KiB")
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > MAX_BODY:
            raise _error(413, f"the body is over {MAX_BODY // 1024} KiB")
    try:
        doc = json.loads(bytes(data))
    except ValueError:
        raise _error(400, "the body is not JSON") from None
    if not isinstance(doc, dict):
        raise _error(400, "expected a JSON object")
    return doc


def _names(doc: dict[str, Any], key: str, required: bool) -> list[str]:
    value = doc.get(key, [] if not required else None)
    if (
        not isinstance(value, list)
        or (required and not value)
        or len(value) > MAX_ITEMS
        or not all(isinstance(v, str) and 0 < len(v) <= 64 and v.isprintable() for v in value)
    ):
        need = "a non-empty list" if required else "a list"
        raise _error(400, f"{key}: {need} of up to {MAX_ITEMS} names")
    return value


def _ttl(value: object) -> float:
    try:
        if isinstance(value, str):
            return parse_ttl(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return parse_ttl(f"{value}s")
    except ValueError as e:
        raise _error(400, f"ttl: {e}") from None
    raise _error(400, "ttl: a duration such as 1h, or whole seconds")


async def create_token(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    doc = await _json(request)
    unknown_keys = set(doc) - {"devices", "cameras", "ttl", "name"}
    if unknown_keys:
        raise _error(400, f"unknown key {sorted(unknown_keys)[0]!r}: devices, cameras, ttl, name")
    devices = _names(doc, "devices", True)
    cameras = _names(doc, "cameras", False)
    ttl = _ttl(doc.get("ttl", "1h"))
    name = doc.get("name", "remote viewer")
    if not isinstance(name, str) or not 0 < len(name) <= 100 or not name.isprintable():
        raise _error(400, "name: 1 to 100 printable characters")
    loop = asyncio.get_running_loop()
    known = await loop.run_in_executor(None, admin.devices.ids)
    missing = [d for d in devices if d not in known]
    if missing:
        raise _error(400, f"devices: no device with id {missing[0]!r}")
    token, grant = await loop.run_in_executor(
        None, lambda: admin.tokens.create(name, cameras, "view", ttl, devices=devices)
    )
    log.info("admin minted token %s for %s", grant.id, ",".join(devices))
    return web.json_response(
        {"token": token, "id": grant.id, "expires": int(grant.expires)}, status=201
    )


async def list_tokens(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    rows = await asyncio.get_running_loop().run_in_executor(None, admin.tokens.list)
    # The proxy's key signs LAN-style grants too: only the tokens for devices are Mirage's.
    return web.json_response([r for r in rows if r.get("devices")])


async def revoke_token(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    token_id = request.match_info["id"]
    done = await asyncio.get_running_loop().run_in_executor(None, admin.tokens.revoke, token_id)
    if not done:
        raise _error(404, f"no token with id {token_id!r}")
    # revoke() marks it revoked in this process, so the revocation poll will not report it
    # as new: its sessions are ended here.
    await admin.hub.revoked({token_id})
    log.info("admin revoked token %s", token_id)
    return web.json_response({"revoked": token_id})


async def add_device(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    doc = await _json(request)
    name = doc.get("name")
    if set(doc) - {"name"} or not isinstance(name, str):
        raise _error(400, 'expected {"name": "..."}')
    try:
        device, secret = await asyncio.get_running_loop().run_in_executor(
            None, admin.devices.add, name
        )
    except ValueError as e:
        raise _error(400, f"name: {e}") from None
    log.info("admin added device %s (%s)", device.id, device.name)
    body = {"id": device.id, "name": device.name, "secret": secret, "added": device.added}
    return web.json_response(body, status=201)


async def list_devices(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    devices = await asyncio.get_running_loop().run_in_executor(None, admin.devices.list)
    online = admin.hub.online
    return web.json_response(
        [{"id": d.id, "name": d.name, "added": d.added, "online": d.id in online} for d in devices]
    )


async def remove_device(request: web.Request) -> web.Response:
    admin = request.app[ADMIN_KEY]
    device_id = request.match_info["id"]
    done = await asyncio.get_running_loop().run_in_executor(None, admin.devices.remove, device_id)
    if not done:
        raise _error(404, f"no device with id {device_id!r}")
    log.info("admin removed device %s", device_id)  # the removal poll closes its link
    return web.json_response({"removed": device_id})


def add_routes(app: web.Application, admin: Admin) -> None:
    app[ADMIN_KEY] = admin
    app.router.add_get("/admin/tokens", guarded(list_tokens))
    app.router.add_post("/admin/tokens", guarded(create_token))
    app.router.add_delete("/admin/tokens/{id}", guarded(revoke_token))
    app.router.add_get("/admin/devices", guarded(list_devices))
    app.router.add_post("/admin/devices", guarded(add_device))
    app.router.add_delete("/admin/devices/{id}", guarded(remove_device))
