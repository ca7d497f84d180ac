"""The Mirage proxy's limits (mirage/limits.py) and token expiry: a real ``titaniumctl mirage
serve`` with small limits in its config, real aiohttp viewers (some bound to 127.0.0.2 to be
another address) and a real WebSocket printer answering with aiortc (the helpers of
test_mirage_signalling.py)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import TITANIUMCTL, free_port
from tests.integration.test_mirage_devices import serve, write_config
from tests.integration.test_mirage_signalling import make_offer, mint, post, printer
from titanium.common.tokens import Tokens

ADMIN_KEY = "k" * 40


def from_address(address: str) -> aiohttp.ClientSession:
    """A client whose connections leave from ``address`` (127.0.0.0/8 is all loopback)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def options(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, str, Any]:
    async with http.options(url, headers=headers) as res:
        return res.status, await res.text(), res.headers


def test_a_flood_from_one_address_gets_429_while_another_address_is_served(
    tmp_path: Path,
) -> None:
    """Pins: signalling from one source address past limits.address_burst is refused with 429,
    Retry-After and a reason naming the config keys, bad tokens included (the address is
    counted before the token), while a viewer from 127.0.0.2 still gets its session. Before
    the proxy had limits every request of the flood reached the token check."""
    limits = {"address_rate": 0.1, "address_burst": 5}
    with serve(tmp_path, limits=limits) as proxy:
        device, secret = proxy.add()
        token, _ = mint(proxy, "--device", device)
        whep = f"{proxy.url}/d/{device}/whep/cam0"

        async def run() -> None:
            _, offer = await make_offer()
            async with printer(proxy, device, secret), aiohttp.ClientSession() as flood:
                answers = [await post(flood, f"{whep}?token=nonsense", offer) for _ in range(12)]
                statuses = [status for status, _, _ in answers]
                assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 7, statuses
                _, reason, headers = answers[-1]
                assert "limits.address_rate" in reason and "limits.address_burst" in reason
                assert int(headers["Retry-After"]) >= 1
                # The flooding address is held back even with a good token...
                assert (await post(flood, f"{whep}?token={token}", offer))[0] == 429
                # ...and another address is not.
                async with from_address("127.0.0.2") as other:
                    status, text, _ = await post(other, f"{whep}?token={token}", offer)
                    assert status == 201, text

        asyncio.run(run())


def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    """Pins: with trusted_proxies set, the client named in X-Forwarded-For (read from the
    right) is the one limited, so two clients behind one reverse proxy have two buckets; a
    peer that is not trusted cannot escape its limit by naming another address."""
    limits = {"address_rate": 0.2, "address_burst": 3}
    with serve(tmp_path, limits=limits, trusted_proxies=["127.0.0.1"]) as proxy:
        device, _ = proxy.add()
        token, _ = mint(proxy, "--device", device)
        url = f"{proxy.url}/d/{device}/whep/cam0?token={token}"

        async def run() -> None:
            async with aiohttp.ClientSession() as http:
                spoofed = "203.0.113.9, 198.51.100.1"  # the left one is the client's word
                got = [(await options(http, url, **{"X-Forwarded-For": spoofed}))[0]]
                got += [(await options(http, url, **{"X-Forwarded-For": spoofed}))[0]]
                got += [(await options(http, url, **{"X-Forwarded-For": spoofed}))[0]]
                got += [(await options(http, url, **{"X-Forwarded-For": spoofed}))[0]]
                assert got == [204, 204, 204, 429]
                other = {"X-Forwarded-For": "203.0.113.9, 198.51.100.2"}
                assert (await options(http, url, **other))[0] == 204
            async with from_address("127.0.0.2") as untrusted:
                for i in range(4):
                    named = {"X-Forwarded-For": f"198.51.100.{10 + i}"}
                    status = (await options(untrusted, url, **named))[0]
                    assert status == (429 if i == 3 else 204), (i, status)

        asyncio.run(run())


def test_rate_limits_per_token_and_per_device(tmp_path: Path) -> None:
    """Pins: one token past limits.token_burst gets 429 naming limits.token_rate while
    another token is served; requests at one device past limits.device_burst get 429 naming
    limits.device_rate while the same token still reaches another device."""
    limits = {"token_burst": 3, "token_rate": 0.1, "device_burst": 5, "device_rate": 0.1}
    with serve(tmp_path, limits=limits) as proxy:
        device, _ = proxy.add()
        second, _ = proxy.add("second")
        a, _ = mint(proxy, "--device", device)
        b, _ = mint(proxy, "--device", device, "--device", second)
        url = f"{proxy.url}/d/{device}/whep/cam0"

        async def run() -> None:
            async with aiohttp.ClientSession() as http:
                got = [await options(http, f"{url}?token={a}") for _ in range(4)]
                assert [g[0] for g in got] == [204, 204, 204, 429]
                assert "limits.token_rate" in got[-1][1], got[-1][1]
                got = [await options(http, f"{url}?token={b}") for _ in range(3)]
                assert [g[0] for g in got] == [204, 204, 429]
                assert "limits.device_rate" in got[-1][1], got[-1][1]
                there = f"{proxy.url}/d/{second}/whep/cam0?token={b}"
                assert (await options(http, there))[0] == 204

        asyncio.run(run())


def test_session_caps_per_token_and_per_device(tmp_path: Path) -> None:
    """Pins: a token with limits.sessions_per_token sessions open gets 429 (Retry-After,
    reason naming the key) for another, while another token is served until the device has
    limits.sessions_per_device open; ending a session frees its slot. The printer never sees
    the refused offers."""
    limits = {"sessions_per_token": 2, "sessions_per_device": 3}
    with serve(tmp_path, limits=limits) as proxy:
        device, secret = proxy.add()
        a, _ = mint(proxy, "--device", device)
        b, _ = mint(proxy, "--device", device)
        whep = f"{proxy.url}/d/{device}/whep/cam0"

        async def run() -> None:
            _, offer = await make_offer()
            async with printer(proxy, device, secret) as p, aiohttp.ClientSession() as http:
                first = await post(http, f"{whep}?token={a}", offer)
                assert first[0] == 201
                assert (await post(http, f"{whep}?token={a}", offer))[0] == 201
                status, reason, headers = await post(http, f"{whep}?token={a}", offer)
                assert status == 429 and "limits.sessions_per_token" in reason, reason
                assert int(headers["Retry-After"]) >= 1
                assert (await post(http, f"{whep}?token={b}", offer))[0] == 201
                status, reason, _ = await post(http, f"{whep}?token={b}", offer)
                assert status == 429 and "limits.sessions_per_device" in reason, reason
                assert p.got.qsize() == 3, "refused offers must not reach the printer"
                async with http.delete(f"{proxy.url}{first[2]['Location']}") as res:
                    assert res.status == 200
                assert (await post(http, f"{whep}?token={b}", offer))[0] == 201

        asyncio.run(run())


def test_a_device_flooding_its_websocket_is_closed_4429(tmp_path: Path) -> None:
    """Pins: a device sending more than limits.device_messages_burst messages at once is
    closed with 4429 and a reason naming limits.device_messages_rate; another device stays
    online. Before, the proxy parsed every message of the flood."""
    limits = {"device_messages_burst": 20, "device_messages_rate": 1}
    with serve(tmp_path, limits=limits) as proxy:
        loud, loud_secret = proxy.add("loud")
        quiet, quiet_secret = proxy.add("quiet")

        async def run() -> None:
            async with printer(proxy, quiet, quiet_secret):
                async with aiohttp.ClientSession() as session:
                    ws = await session.ws_connect(proxy.url.replace("http", "ws") + "/device")
                    await ws.send_json({"type": "hello", "device": loud, "secret": loud_secret})
                    assert await ws.receive_json(timeout=10) == {"type": "welcome"}
                    for _ in range(30):
                        await ws.send_json({"type": "closed", "session": "x"})
                    msg = await ws.receive(timeout=10)
                    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
                    assert ws.close_code == 4429, (ws.close_code, msg.extra)
                    assert "limits.device_messages_rate" in str(msg.extra)
                health = proxy.health()
                assert health["devices"] == [quiet], health

        asyncio.run(run())


def test_a_session_ends_when_its_token_expires(tmp_path: Path) -> None:
    """Pins: the revocation poll also ends sessions whose token has expired: the printer is
    sent `close` for it within a few seconds of the expiry, and a longer-lived token's
    session stays. Before, a session outlived its token for as long as the peer flowed. The
    3 s token is minted with Tokens directly: the CLI's floor is 60 s."""
    with serve(tmp_path) as proxy:
        device, secret = proxy.add()
        tokens = Tokens(tmp_path / "state")
        short, grant = tokens.create("brief", (), "view", 3, devices=[device])
        keep, _ = mint(proxy, "--device", device)
        whep = f"{proxy.url}/d/{device}/whep/cam0"

        async def run() -> None:
            _, offer = await make_offer()
            async with printer(proxy, device, secret) as p, aiohttp.ClientSession() as http:
                status, text, _ = await post(http, f"{whep}?token={short}", offer)
                assert status == 201, text
                doomed = (await p.next("offer"))["session"]
                assert (await post(http, f"{whep}?token={keep}", offer))[0] == 201
                await p.next("offer")
                closed = await p.next("close", timeout=grant.expires - time.time() + 5)
                assert closed == {"type": "close", "session": doomed}
                assert time.time() - grant.expires < 3.0
                assert proxy.health()["sessions"] == 1

        asyncio.run(run())


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"limits": {"address_rate": 0}}, "limits.address_rate: expected a rate"),
        ({"limits": {"sessions_per_token": 0}}, "limits.sessions_per_token: expected an int"),
        ({"limits": {"burst": 5}}, "limits.burst: expected one of the known keys"),
        ({"trusted_proxies": ["nginx"]}, "trusted_proxies: expected a list of addresses"),
        ({"admin_key": "short-" * 5}, "admin_key: expected at least 32"),
    ],
)
def test_bad_limits_config_names_the_key(tmp_path: Path, extra: dict[str, Any], error: str) -> None:
    """Pins: a bad limits, trusted_proxies or admin_key value stops `mirage serve` (exit 2)
    with the key path; a too-short admin key is not echoed back (it is a secret)."""
    doc = {"listen": f"127.0.0.1:{free_port()}", "state_dir": str(tmp_path / "s"), **extra}
    config = write_config(tmp_path, doc)
    out = subprocess.run(
        [TITANIUMCTL, "mirage", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and error in out.stderr, out.stderr
    if "admin_key" in extra:
        assert extra["admin_key"] not in out.stderr
