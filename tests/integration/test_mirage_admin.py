"""The Mirage proxy's admin HTTP API (mirage/admin.py) against a real ``titaniumctl mirage
serve``: a real aiohttp client as Hydrogen, a real WebSocket printer answering with aiortc
(test_mirage_signalling.py's helpers)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.test_mirage_limits import serve
from tests.integration.test_mirage_signalling import make_offer, post, printer

ADMIN_KEY = "a-very-long-admin-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, **headers: str
) -> tuple[int, Any, Any]:
    async with http.request(method, url, json=body, headers={**AUTH, **headers}) as res:
        if res.content_type == "application/json":
            return res.status, await res.json(), res.headers
        return res.status, await res.text(), res.headers


def test_admin_round_trip_devices_tokens_and_revocation(tmp_path: Path) -> None:
    """Pins: with admin_key set, POST /admin/devices adds a device whose secret lets it dial
    in, POST /admin/tokens mints a token (id, expires) that opens a session on it, GET lists
    both, DELETE /admin/tokens/ID ends the token's live session within 2 s and refuses the
    token after, DELETE /admin/devices/ID cuts the device off (4403); unknown ids are 404,
    bad bodies 400; no answer carries CORS headers. Before, the proxy had no /admin at all."""
    with serve(tmp_path, admin_key=ADMIN_KEY) as proxy:
        admin = proxy.url + "/admin"

        async def run() -> None:
            _, offer = await make_offer()
            async with aiohttp.ClientSession() as http:
                status, device, headers = await call(
                    http, "POST", admin + "/devices", {"name": "mk4"}
                )
                assert status == 201 and device["name"] == "mk4" and device["secret"], device
                assert "Access-Control-Allow-Origin" not in headers
                status, listed, _ = await call(http, "GET", admin + "/devices")
                assert status == 200 and [d["id"] for d in listed] == [device["id"]]
                assert "secret" not in listed[0] and listed[0]["online"] is False

                body = {"devices": [device["id"]], "cameras": ["cam0"], "ttl": "10m"}
                status, minted, _ = await call(http, "POST", admin + "/tokens", body)
                assert status == 201, minted
                assert set(minted) == {"token", "id", "expires"}
                assert 590 < minted["expires"] - time.time() <= 600
                bad = [
                    {"devices": []},
                    {"devices": ["dev_nope"]},
                    {"devices": [device["id"]], "ttl": "5s"},
                    {"devices": [device["id"]], "rights": "admin"},
                ]
                for doc in bad:
                    status, text, _ = await call(http, "POST", admin + "/tokens", doc)
                    assert status == 400, (doc, status, text)
                status, tokens, _ = await call(http, "GET", admin + "/tokens")
                assert [t["id"] for t in tokens] == [minted["id"]]
                assert "token" not in tokens[0] and tokens[0]["devices"] == [device["id"]]

                whep = f"{proxy.url}/d/{device['id']}/whep/cam0?token={minted['token']}"
                async with printer(proxy, device["id"], device["secret"]) as p:
                    status, text, _ = await post(http, whep, offer)
                    assert status == 201, text
                    sid = (await p.next("offer"))["session"]
                    status, _, _ = await call(http, "DELETE", f"{admin}/tokens/{minted['id']}")
                    assert status == 200
                    revoked_at = time.monotonic()
                    assert await p.next("close", timeout=5) == {"type": "close", "session": sid}
                    assert time.monotonic() - revoked_at < 2.0
                    assert (await post(http, whep, offer))[:2] == (401, "the token was revoked")
                    status, _, _ = await call(http, "DELETE", f"{admin}/tokens/{minted['id']}x")
                    assert status == 404

                    status, _, _ = await call(http, "DELETE", f"{admin}/devices/{device['id']}")
                    assert status == 200
                    await asyncio.wait_for(p.task, 5)  # the printer's reader ends at the close
                    assert p.ws.close_code == 4403
                status, _, _ = await call(http, "DELETE", f"{admin}/devices/{device['id']}")
                assert status == 404

        asyncio.run(run())


def test_admin_refuses_without_the_key_and_is_rate_limited(tmp_path: Path) -> None:
    """Pins: no Authorization, a wrong key or another scheme is 401 (WWW-Authenticate, no
    CORS, nothing done); guessing is rate limited per address (limits.admin_*), refused
    requests included, so the right key then waits too."""
    limits = {"admin_burst": 5, "admin_rate": 0.1}
    with serve(tmp_path, admin_key=ADMIN_KEY, limits=limits) as proxy:
        url = proxy.url + "/admin/devices"

        async def run() -> None:
            async with aiohttp.ClientSession() as http:
                got = [
                    await call(http, "GET", url, Authorization=""),
                    await call(http, "GET", url, Authorization="Bearer " + ADMIN_KEY[:-1]),
                    await call(http, "GET", url, Authorization="Basic " + ADMIN_KEY),
                    await call(http, "POST", url, {"name": "x"}, Authorization="Bearer nope"),
                ]
                assert [g[0] for g in got] == [401] * 4, got
                assert all("Access-Control-Allow-Origin" not in g[2] for g in got)
                assert got[0][2]["WWW-Authenticate"].startswith("Bearer")
                assert (await call(http, "GET", url))[:2] == (200, [])
                status, reason, headers = await call(http, "GET", url)
                assert status == 429 and "limits.admin_rate" in reason, reason
                assert int(headers["Retry-After"]) >= 1

        asyncio.run(run())
        assert proxy.ctl("list-devices").stdout.strip() == "no devices registered"


def test_admin_api_is_off_without_a_key(tmp_path: Path) -> None:
    """Pins: without admin_key in the proxy config every /admin route answers 404, even
    with a bearer key and without CORS headers (before, /admin's 404 carried them like
    every other answer), while the rest of the proxy serves."""
    with serve(tmp_path) as proxy:

        async def run() -> None:
            async with aiohttp.ClientSession() as http:
                for method, path in [("GET", "/tokens"), ("POST", "/devices"), ("GET", "/devices")]:
                    status, _, headers = await call(http, method, proxy.url + "/admin" + path, {})
                    assert status == 404, (method, path, status)
                    assert "Access-Control-Allow-Origin" not in headers

        asyncio.run(run())
        assert proxy.health()["ok"] is True
