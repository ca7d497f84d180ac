"""The Mirage proxy routing viewers' WHEP signalling to printers (docs/mirage-protocol.md): a
real ``titaniumctl mirage serve`` on 127.0.0.1, viewer tokens minted with the real CLI, a real
aiohttp WHEP client as the viewer and a real WebSocket client as the printer, which answers
offers with an aiortc peer connection's answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from tests.integration.test_mirage_devices import Proxy, serve

TURN = {"secret": "s" * 32, "urls": ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478"]}


@pytest.fixture
def proxy(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Proxy]:
    """A proxy with TURN configured and a 2 s signal_timeout (the 504 test waits that long),
    or the timeout a test gives as its indirect parameter."""
    extra = {"turn": TURN, "signal_timeout": getattr(request, "param", 2)}
    with serve(tmp_path, **extra) as p:
        yield p


def mint(proxy: Proxy, *args: str) -> tuple[str, str]:
    """A viewer token from `titaniumctl mirage token`: (token, id)."""
    out = proxy.ctl("token", *args)
    assert out.returncode == 0, out.stderr
    fields = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in out.stdout.splitlines())}
    return fields["token"], fields["id"].split()[0]


class Printer:
    """The printer's side of /device, driven by the test: messages from the proxy queue up,
    offers are answered by a real aiortc peer unless told to stay silent."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, answer: str) -> None:
        self.ws = ws
        self.answer = answer  # "sdp", "error" or "silent"
        self.got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.peers: list[RTCPeerConnection] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for msg in self.ws:
            doc = json.loads(msg.data)
            await self.got.put(doc)
            if doc["type"] != "offer" or self.answer == "silent":
                continue
            if self.answer == "error":
                reply = {"type": "error", "session": doc["session"], "code": "busy"}
                await self.ws.send_json({**reply, "reason": "the encoder is busy"})
                continue
            pc = RTCPeerConnection()
            self.peers.append(pc)
            await pc.setRemoteDescription(RTCSessionDescription(doc["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            sdp = pc.localDescription.sdp
            await self.ws.send_json({"type": "answer", "session": doc["session"], "sdp": sdp})

    async def next(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        while True:
            doc = await asyncio.wait_for(self.got.get(), timeout)
            if doc["type"] == kind:
                return doc


@asynccontextmanager
async def printer(
    proxy: Proxy, device: str, secret: str, answer: str = "sdp"
) -> AsyncIterator[Printer]:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(proxy.url.replace("http", "ws") + "/device")
        hello = {"type": "hello", "device": device, "secret": secret, "version": 1}
        await ws.send_json({**hello, "cameras": ["cam0", "cam1"]})
        assert await ws.receive_json(timeout=10) == {"type": "welcome"}
        p = Printer(ws, answer)
        try:
            yield p
        finally:
            await ws.close()
            p.task.cancel()
            for pc in p.peers:
                await pc.close()


async def make_offer() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def post(
    http: aiohttp.ClientSession, url: str, sdp: str, **headers: str
) -> tuple[int, str, Any]:
    async with http.post(
        url, data=sdp, headers={"Content-Type": "application/sdp", **headers}
    ) as res:
        return res.status, await res.text(), res.headers


def test_offer_answer_candidates_and_close_reach_the_printer(proxy: Proxy) -> None:
    """Pins: a viewer's WHEP POST reaches the printer as an `offer` (camera, token id, viewer
    address, TURN credentials minted for the session) and its answer comes back as 201 with
    Location and ETag; PATCH candidates reach it as `candidates`, DELETE as `close`; OPTIONS
    gives Link ice-servers for the token and a preflight needs none; CORS on every answer."""
    device, secret = proxy.add()
    token, jti = mint(proxy, "--device", device, "--camera", "cam0")
    whep = f"{proxy.url}/d/{device}/whep/cam0"

    async def run() -> None:
        viewer, offer = await make_offer()
        async with printer(proxy, device, secret) as p, aiohttp.ClientSession() as http:
            async with http.options(f"{whep}?token={token}") as res:
                assert res.status == 204 and res.headers["Access-Control-Allow-Origin"] == "*"
                links = res.headers.getall("Link")
            assert len(links) == 2 and all('rel="ice-server"' in link for link in links)
            assert links[0].startswith("<turn:127.0.0.1:3478?transport=udp>;")
            assert f':{jti}"; credential="' in links[0]
            pre = {"Access-Control-Request-Method": "POST", "Origin": "http://elsewhere"}
            async with http.options(whep, headers=pre) as res:
                assert res.status == 204 and "POST" in res.headers["Access-Control-Allow-Methods"]

            status, answer, headers = await post(http, whep, offer, Authorization=f"Bearer {token}")
            assert status == 201, answer
            got = await p.next("offer")
            assert got["camera"] == "cam0" and got["token"] == jti and got["sdp"] == offer
            assert got["address"] == "127.0.0.1"
            assert [s["urls"] for s in got["ice_servers"]] == TURN["urls"]
            assert got["ice_servers"][0]["username"].endswith(":" + got["session"])
            assert answer == p.peers[0].localDescription.sdp
            assert headers["Content-Type"] == "application/sdp" and headers["ETag"]
            assert headers["Location"] == f"/d/{device}/whep/cam0/{got['session']}"
            assert "Location" in headers["Access-Control-Expose-Headers"]
            await viewer.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            health = await (await http.get(proxy.url + "/health")).json()
            assert health["sessions"] == 1 and health["cameras"] == {device: ["cam0", "cam1"]}

            session_url = f"{proxy.url}{headers['Location']}?token={token}"
            frag = (
                "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\nm=video 9 "
                "UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
                "a=candidate:1 1 udp 2130706431 192.0.2.7 50000 typ host\r\n"
            )
            ctype = {"Content-Type": "application/trickle-ice-sdpfrag"}
            async with http.patch(session_url, data=frag, headers=ctype) as res:
                assert res.status == 204, await res.text()
            candidates = await p.next("candidates")
            assert candidates["session"] == got["session"]
            assert candidates["candidates"] == [
                {
                    "candidate": "candidate:1 1 udp 2130706431 192.0.2.7 50000 typ host",
                    "sdpMid": "0",
                    "sdpMLineIndex": 0,
                }
            ]
            async with http.delete(session_url) as res:
                assert res.status == 200 and res.headers["Access-Control-Allow-Origin"] == "*"
            assert await p.next("close") == {"type": "close", "session": got["session"]}
            async with http.delete(session_url) as res:
                assert res.status == 404
            await viewer.close()

    asyncio.run(run())
    assert proxy.health()["sessions"] == 0


def test_refusals_name_their_reason_with_cors(proxy: Proxy) -> None:
    """Pins: 401 for no token, a garbage one and an expired one signed by this proxy; 403 for
    another device's token and another camera's; 404 for a camera the printer did not
    announce (listing those it did) and for another token's session; 400 for a malformed
    offer; 413 for a body over 64 KiB, with a Content-Length or chunked (a chunked one was
    cut short and the prefix forwarded); 503 for a device not connected. Each is text/plain
    with CORS, and the printer never sees the refused offers."""
    device, secret = proxy.add()
    other, _ = proxy.add("other printer")
    token, _ = mint(proxy, "--device", device, "--camera", "cam0", "--camera", "cam9")
    other_token, _ = mint(proxy, "--device", device)
    key = (Path(proxy.config).parent / "state" / "token.key").read_bytes()
    claims = {"jti": "x1", "sub": "v", "devs": [device], "exp": int(time.time()) - 5}
    expired = jwt.encode(claims, key, algorithm="HS256")
    base = f"{proxy.url}/d/{device}/whep"

    async def run() -> None:
        _, offer = await make_offer()
        async with printer(proxy, device, secret) as p, aiohttp.ClientSession() as http:
            cases = [
                (f"{base}/cam0", offer, 401, "needs a token"),
                (f"{base}/cam0?token=garbage", offer, 401, "not one this proxy issued"),
                (f"{base}/cam0?token={expired}", offer, 401, "expired"),
                (f"{proxy.url}/d/{other}/whep/cam0?token={token}", offer, 403, other),
                (f"{base}/cam1?token={token}", offer, 403, "camera cam1"),
                (f"{base}/cam9?token={token}", offer, 404, "(it has: cam0, cam1)"),
                (f"{base}/cam0?token={token}", "v=0\r\nnot sdp\r\n", 400, "offer: line 2"),
                (f"{base}/cam0?token={token}", "v=0\r\n" + "a" * 70000, 413, "64 KiB"),
                (f"{proxy.url}/d/dev_x/whep/cam0?token=garbage", offer, 401, "not one"),
            ]
            for url, body, want, reason in cases:
                status, text, headers = await post(http, url, body)
                assert (status, reason in text) == (want, True), (url[-40:], status, text)
                assert headers["Access-Control-Allow-Origin"] == "*"
                assert headers["Content-Type"].startswith("text/plain")
                assert "Error" not in text and "Traceback" not in text

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
                yield b"v=0\r\n"
                for _ in range(10):
                    await asyncio.sleep(0.01)
                    yield b"a=x\r\n" * 1500

            ctype = {"Content-Type": "application/sdp"}
            async with http.post(f"{base}/cam0?token={token}", data=chunks(), headers=ctype) as r:
                assert (r.status, "64 KiB" in await r.text()) == (413, True)
            status, _, headers = await post(http, f"{base}/cam0?token={token}", offer)
            assert status == 201
            assert (await p.next("offer"))["camera"] == "cam0"
            assert p.got.empty(), "a refused offer reached the printer"
            theirs = f"{proxy.url}{headers['Location'].split('?')[0]}?token={other_token}"
            async with http.delete(theirs) as res:
                assert res.status == 404 and "another token" in await res.text()
        async with aiohttp.ClientSession() as http:
            status, text, _ = await post(http, f"{base}/cam0?token={token}", offer)
            assert (status, f"device {device} is not connected") == (503, text)

    asyncio.run(run())


def test_printer_error_silence_and_loss(proxy: Proxy) -> None:
    """Pins: the printer's `error` reaches the viewer as 502 with its reason; a silent printer
    gives 504 after signal_timeout (2 s here, not the default 15) and is told to `close` the
    session; a printer that hangs up while an offer waits fails it with 503."""
    device, secret = proxy.add()
    token, _ = mint(proxy, "--device", device)
    whep = f"{proxy.url}/d/{device}/whep/cam1?token={token}"

    async def run() -> None:
        _, offer = await make_offer()
        async with aiohttp.ClientSession() as http:
            async with printer(proxy, device, secret, answer="error"):
                status, text, _ = await post(http, whep, offer)
                assert status == 502 and "busy: the encoder is busy" in text, text
            async with printer(proxy, device, secret, answer="silent") as p:
                started = time.monotonic()
                status, text, _ = await post(http, whep, offer)
                waited = time.monotonic() - started
                assert status == 504 and "within 2 s" in text, text
                assert 1.5 < waited < 10, waited
                sid = (await p.next("offer"))["session"]
                assert await p.next("close") == {"type": "close", "session": sid}
            async with printer(proxy, device, secret, answer="silent") as p:
                pending = asyncio.create_task(post(http, whep, offer))
                await p.next("offer")
                await p.ws.close()
                status, text, _ = await pending
                assert status == 503, text

    asyncio.run(run())


def test_revoking_a_token_closes_its_sessions_within_2s(proxy: Proxy) -> None:
    """Pins: `titaniumctl mirage revoke ID` while a session is live makes the proxy send the
    printer `close` for it within 2 s and forget it; another token's session stays until the
    printer hangs up; the revoked token is refused (401) afterwards; revoking an unknown id
    exits 2."""
    device, secret = proxy.add()
    token, jti = mint(proxy, "--device", device, "--ttl", "10m")
    keep, _ = mint(proxy, "--device", device)
    whep = f"{proxy.url}/d/{device}/whep/cam0"

    async def run() -> None:
        _, offer = await make_offer()
        async with printer(proxy, device, secret) as p, aiohttp.ClientSession() as http:
            assert (await post(http, f"{whep}?token={token}", offer))[0] == 201
            doomed = (await p.next("offer"))["session"]
            assert (await post(http, f"{whep}?token={keep}", offer))[0] == 201
            await p.next("offer")
            out = await asyncio.to_thread(proxy.ctl, "revoke", jti)
            assert out.returncode == 0, out.stderr
            revoked_at = time.monotonic()
            assert await p.next("close", timeout=5) == {"type": "close", "session": doomed}
            assert time.monotonic() - revoked_at < 2.0
            health = await (await http.get(proxy.url + "/health")).json()
            assert health["sessions"] == 1
            status, text, _ = await post(http, f"{whep}?token={token}", offer)
            assert (status, text) == (401, "the token was revoked")
        deadline = time.monotonic() + 5
        while proxy.health()["sessions"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert proxy.health()["sessions"] == 0, "the printer hung up: its sessions must go"

    asyncio.run(run())
    again = proxy.ctl("revoke", "0000")
    assert again.returncode == 2 and "no token with id '0000'" in again.stderr


def test_token_cli_mints_for_registered_devices_only(proxy: Proxy) -> None:
    """Pins: `titaniumctl mirage token` signs with the proxy's key a token whose `devs` and
    `cams` are what was asked, and refuses an unregistered device or a bad --ttl (exit 2)."""
    device, _ = proxy.add()
    second, _ = proxy.add("second")
    token, jti = mint(proxy, "--device", device, "--device", second, "--camera", "cam0")
    key = (Path(proxy.config).parent / "state" / "token.key").read_bytes()
    claims = jwt.decode(token, key, algorithms=["HS256"])
    assert (claims["jti"], claims["devs"], claims["cams"]) == (jti, [device, second], ["cam0"])
    assert 3500 < claims["exp"] - time.time() <= 3600
    bad = proxy.ctl("token", "--device", "dev_nope")
    assert bad.returncode == 2 and "no device with id 'dev_nope'" in bad.stderr
    assert proxy.ctl("token", "--device", device, "--ttl", "soon").returncode == 2
    assert proxy.ctl("token").returncode == 2  # --device is required


@pytest.mark.parametrize("proxy", [15], indirect=True)  # the printer answers after ~2 s
def test_a_token_revoked_while_the_printer_answers_opens_no_session(proxy: Proxy) -> None:
    """Pins: an answer that arrives after its token was revoked (the revocation poll found no
    session to close yet) gives the viewer 401, not a session, and the printer a `close`."""
    device, secret = proxy.add()
    token, jti = mint(proxy, "--device", device)

    async def run() -> None:
        _, offer = await make_offer()
        async with (
            printer(proxy, device, secret, answer="silent") as p,
            aiohttp.ClientSession() as http,
        ):
            pending = asyncio.create_task(
                post(http, f"{proxy.url}/d/{device}/whep/cam0?token={token}", offer)
            )
            got = await p.next("offer")
            assert (await asyncio.to_thread(proxy.ctl, "revoke", jti)).returncode == 0
            await asyncio.sleep(1.2)  # past the 0.5 s revocation poll, within the 2 s
            pc = RTCPeerConnection()
            p.peers.append(pc)
            await pc.setRemoteDescription(RTCSessionDescription(got["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            answer = {"type": "answer", "session": got["session"]}
            await p.ws.send_json({**answer, "sdp": pc.localDescription.sdp})
            status, text, _ = await pending
            assert (status, text) == (401, "the token was revoked")
            assert await p.next("close") == {"type": "close", "session": got["session"]}
            health = await (await http.get(proxy.url + "/health")).json()
            assert health["sessions"] == 0

    asyncio.run(run())
