"""Rate limits and session caps of the front door (issue 10), through a real stack.

Two clients on one machine: 127.0.0.1 and 127.0.0.2 are both loopback, and a socket bound
to 127.0.0.2 as its source is another address to the server.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.integration.conftest import Stack
from tests.integration.mjpeg_client import MjpegClient
from titanium.common.ratelimit import MAX_KEYS

OTHER = "127.0.0.2"
# A camera-streamer step for a session nobody has: the webrtc service answers 404 at once,
# so the flood costs signalling and nothing else.
UNKNOWN = json.dumps({"type": "remote_candidate", "id": "nobody", "candidates": []})


def _session(source: str | None = None) -> aiohttp.ClientSession:
    local = (source, 0) if source else None
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=local))


async def _flood(url: str, seconds: float, **headers: str) -> list[tuple[int, Any, str]]:
    """POST UNKNOWN as fast as 4 connections go: (status, Retry-After, body) of each."""
    out: list[tuple[int, Any, str]] = []
    end = time.monotonic() + seconds

    async def one_connection(http: aiohttp.ClientSession) -> None:
        while time.monotonic() < end:
            async with http.post(url, data=UNKNOWN, headers=headers) as r:
                out.append((r.status, r.headers.get("Retry-After"), await r.text()))
                assert r.headers.get("Access-Control-Allow-Origin") == "*", r.headers

    async with _session() as http:
        await asyncio.gather(*(one_connection(http) for _ in range(4)))
    return out


async def _post_unknown(url: str, source: str | None = None, **headers: str) -> int:
    async with _session(source) as http, http.post(url, data=UNKNOWN, headers=headers) as r:
        return r.status


def test_a_signalling_flood_from_one_address_gets_429s_while_another_keeps_its_frame_rate(
    stack: Stack,
) -> None:
    """Pins: no limit at all, so one client's flood of signalling requests was served
    in full; and a limit that would hold back everyone behind it."""
    viewer = MjpegClient(stack.port, "/stream", source=OTHER)
    try:
        viewer.frames_for(1)  # past the first frames' start-up
        before = viewer.frames_for(2) / 2
        flood: list[tuple[int, Any, str]] = []
        flooder = threading.Thread(
            target=lambda: flood.extend(asyncio.run(_flood(stack.url("/webrtc"), 3.0)))
        )
        flooder.start()
        time.sleep(0.5)  # into the flood, past its burst
        during = viewer.frames_for(2) / 2
        # Everyone else keeps being served: another address, and another client behind
        # nginx (loopback naming it in X-Forwarded-For or X-Real-IP), are not refused.
        others = [
            asyncio.run(_post_unknown(stack.url("/webrtc"), OTHER)),
            asyncio.run(_post_unknown(stack.url("/webrtc"), **{"X-Forwarded-For": "192.0.2.8"})),
            asyncio.run(_post_unknown(stack.url("/webrtc"), **{"X-Real-IP": "192.0.2.9"})),
        ]
        flooder.join(30)
    finally:
        viewer.close()
    refused = [f for f in flood if f[0] == 429]
    assert len(flood) > 40, f"the flood sent only {len(flood)} requests"
    assert len(refused) > len(flood) / 2, [f[0] for f in flood]
    assert {f[0] for f in flood} <= {404, 429}, {f[0] for f in flood}
    _, retry_after, body = refused[0]
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1
    assert "too many signalling requests" in json.loads(body)["error"]
    assert others == [404, 404, 404], others
    assert during >= 0.8 * before, f"{during:.1f} fps during the flood, {before:.1f} before"
    limits = stack.status()["limits"]
    assert limits["refused"]["signalling"] >= len(refused)
    assert limits["signalling"] == {"rate": 2.0, "burst": 20}


def test_snapshot_polling_at_30_fps_is_served_in_full_and_a_flood_is_not(stack: Stack) -> None:
    """mjpegstreamer-adaptive polls /snapshot at its target_fps (up to 30): 5 s of that
    must never see a 429. Pins: no limit on snapshots at all (the flood was all 200)."""

    async def poll() -> tuple[list[int], list[int]]:
        async with _session() as http:
            polled = []
            start = time.monotonic()
            for i in range(150):  # 30 a second for 5 s, on one keep-alive connection
                await asyncio.sleep(max(0.0, start + i / 30 - time.monotonic()))
                async with http.get(stack.url("/snapshot")) as r:
                    await r.read()
                    polled.append(r.status)

            async def burst() -> list[int]:
                codes = []
                for _ in range(60):
                    async with http.get(stack.url("/?action=snapshot")) as r:
                        await r.read()
                        codes.append(r.status)
                return codes

            flooded = [
                c for codes in await asyncio.gather(*(burst() for _ in range(5))) for c in codes
            ]
            return polled, flooded

    polled, flooded = asyncio.run(poll())
    assert polled == [200] * 150, sorted(set(polled))
    assert 429 in flooded and set(flooded) <= {200, 429}, sorted(set(flooded))
    assert stack.status()["limits"]["refused"]["snapshot"] == flooded.count(429)


async def _whep(base: str) -> tuple[int, str | None]:
    """A WHEP offer from 127.0.0.1: (status, session URL)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    async with (
        _session() as http,
        http.post(f"{base}/whep", data=pc.localDescription.sdp, headers=headers) as r,
    ):
        body = await r.text()
        location = r.headers.get("Location")
    await pc.close()
    if location is not None:
        location = urllib.parse.urljoin(f"{base}/whep", location)
    if r.status == 429:
        assert r.headers["Retry-After"].isdigit(), r.headers
        assert "sessions_per_address" in json.loads(body)["error"]
    return r.status, location


async def _delete(url: str) -> int:
    async with _session() as http, http.delete(url) as r:
        return r.status


def test_sessions_per_address_count_streams_and_peers_together(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins: no cap on concurrent sessions, so one address could hold every viewer slot."""
    stack = make_stack(http={"limits": {"sessions_per_address": 2}})
    first = MjpegClient(stack.port, "/stream")
    second = MjpegClient(stack.port, "/?action=stream")
    refused = MjpegClient(stack.port, "/stream")
    other = MjpegClient(stack.port, "/stream", source=OTHER)
    try:
        assert first.status_line.endswith("200 OK") and second.status_line.endswith("200 OK")
        assert refused.status_line.endswith("429 Too Many Requests"), refused.status_line
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["access-control-allow-origin"] == "*"
        assert other.status_line.endswith("200 OK"), "another address is not held back"
        assert asyncio.run(_whep(stack.base))[0] == 429, "peers share the streams' cap"
        first.close()
        stack.wait_for(lambda st: st["cameras"]["cam0"]["viewers"] == 2, 5, "a stream ended")
        status, session = asyncio.run(_whep(stack.base))
        assert status == 201 and session is not None
        # One stream and one peer: the address is at its cap for streams too.
        third = MjpegClient(stack.port, "/stream")
        assert third.status_line.endswith("429 Too Many Requests"), third.status_line
        third.close()
        assert asyncio.run(_delete(session)) == 200
    finally:
        for client in (first, second, refused, other):
            client.close()
    assert stack.status()["limits"]["refused"]["sessions"] == 3


def test_ten_thousand_client_addresses_do_not_grow_the_bucket_table_past_its_bound(
    stack: Stack,
) -> None:
    """10 000 clients behind a proxy (each a new X-Forwarded-For from loopback), one
    signalling request each, faster than the idle sweep (once per refill time, 10 s) can
    drop them: every one is served (a new address has its full burst) and /status never
    shows more than ratelimit.MAX_KEYS tracked."""
    tracked: list[int] = []

    async def flood() -> list[int]:
        statuses: list[int] = []
        queue = iter(range(10_000))

        async def one_connection(http: aiohttp.ClientSession) -> None:
            for i in queue:
                address = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
                headers = {"X-Forwarded-For": address}
                async with http.post(stack.url("/webrtc"), data=UNKNOWN, headers=headers) as r:
                    statuses.append(r.status)
                    await r.read()

        async def watch(http: aiohttp.ClientSession) -> None:
            while len(statuses) < 10_000:
                async with http.get(stack.url("/status")) as r:
                    tracked.append((await r.json())["limits"]["clients_tracked"])
                await asyncio.sleep(0.25)

        async with _session() as http:
            watcher = asyncio.ensure_future(watch(http))
            await asyncio.gather(*(one_connection(http) for _ in range(8)))
            await watcher
        return statuses

    started = time.monotonic()
    statuses = asyncio.run(flood())
    took = time.monotonic() - started
    assert len(statuses) == 10_000 and set(statuses) == {404}, set(statuses)
    assert max(tracked) >= MAX_KEYS // 2, f"the flood was too slow to test: {tracked}"
    assert max(tracked) <= MAX_KEYS, tracked
    print(f"10 000 addresses in {took:.1f} s; at most {max(tracked)} tracked")
