"""TURN and STUN with UDP blocked: a real coturn listening on UDP and TCP inside a network
namespace this module creates, UDP to its port dropped there with nftables. The webrtc
service must relay over the TCP URL although the UDP one is listed first (aiortc uses one
TURN URL only), answer without waiting out aioice's 5 s gathering timeout, and
`titaniumctl config check` must say which TURN URL will be used."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration import coturn
from tests.integration.conftest import TITANIUMCTL, Stack
from tests.integration.stun import offer_to_nowhere
from titanium.common.config import IceServer

USER, PASSWORD, REALM = "titanium", "relay-test-password", "titanium.test"
# Generous for a loaded 2-core machine, far below the 5 s aioice waited before.
ANSWER_BOUND = 2.0
FRAMES_WANTED = 10
PLAY_BOUND = 20.0


class BlockedTurn:
    """coturn (long-term credentials, one static user) at ``server``:3478 over UDP and TCP,
    in its own namespace behind a veth pair whose root end is ``local``; UDP to 3478 is
    dropped inside the namespace, so only ``transport=tcp`` reaches it."""

    def __init__(self, tmp: Path) -> None:
        self.port = 3478
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.ns = coturn.VethNamespace("turn", 232)
        self.local, self.server = self.ns.local, self.ns.server
        try:
            argv = coturn.command(
                tmp, self.server, self.port, "user", user=f"{USER}:{PASSWORD}", realm=REALM
            )
            self.proc = self.ns.popen(argv)
            coturn.wait_answering(self.proc, tmp, self.server, self.port)
            # Answering over UDP, now no more: only the TCP URL can work from here on.
            rules = (
                "table inet titanium_test {\n chain input {\n"
                "  type filter hook input priority 0; policy accept;\n"
                f"  udp dport {self.port} drop\n }}\n}}\n"
            )
            subprocess.run(
                [*self.ns.exec, "nft", "-f", "-"],
                input=rules.encode(),
                check=True,
                capture_output=True,
            )
        except BaseException:
            self.close()
            raise

    def url(self, transport: str) -> str:
        return f"turn:{self.server}:{self.port}?transport={transport}"

    def servers(self) -> list[dict[str, Any]]:
        """The config's turn_servers: the UDP URL first, as aiortc would be given it."""
        urls = [self.url("udp"), self.url("tcp")]
        return [{"urls": urls, "username": USER, "credential": PASSWORD}]

    def tail(self) -> str:
        return coturn.tail(self.tmp, 20)

    def close(self) -> None:
        coturn.stop(self.proc)
        self.ns.close()


@pytest.fixture(scope="module")
def blocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlockedTurn]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace for coturn")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("turnserver", "coturn")):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian's {package})")
    server = BlockedTurn(tmp_path_factory.mktemp("turn"))
    yield server
    server.close()


def test_order_turn_puts_the_tcp_url_first(blocked: BlockedTurn) -> None:
    """Pins: aiortc was handed [udp URL, tcp URL] as configured and used the UDP one,
    which never answers here. order_turn probes both and puts the TCP URL first; the UDP
    URL stays in the list after it."""
    from titanium.services.webrtc.turnprobe import order_turn

    servers = [IceServer((blocked.url("udp"), blocked.url("tcp")), USER, PASSWORD)]
    started = time.monotonic()
    ordered = asyncio.run(order_turn(servers))
    seconds = time.monotonic() - started
    assert ordered[0] == IceServer((blocked.url("tcp"),), USER, PASSWORD), blocked.tail()
    assert ordered[1:] == (IceServer((blocked.url("udp"),), USER, PASSWORD),)
    assert seconds < 5, f"probing took {seconds:.1f} s"  # each probe is bounded (1.5 s)


def test_per_session_credentials_are_judged_by_reachability(blocked: BlockedTurn) -> None:
    """The proxy's per-session credentials (``<expiry>:<name>``) change with every viewer,
    so a URL is judged by whether a TURN server answers there at all (cached per URL):
    coturn refusing this one (it knows no such user) still counts, and the TCP URL goes
    first. The same refused credential as a static one gets no URL chosen: none can
    allocate, and the configured order is left as it was."""
    from titanium.services.webrtc.turnprobe import order_turn

    urls = (blocked.url("udp"), blocked.url("tcp"))
    minted = [IceServer(urls, "4102444800:viewer-1", "not-known-to-coturn")]
    assert asyncio.run(order_turn(minted))[0].urls == (blocked.url("tcp"),)
    static = [IceServer(urls, "nobody", "not-known-to-coturn")]
    assert asyncio.run(order_turn(static)) == tuple(static)


async def _relay_view(stack: Stack, blocked: BlockedTurn) -> tuple[int, list[str]]:
    """A WHEP viewer that can only be reached through coturn (relay-only, over TCP): the
    frames it decodes in PLAY_BOUND, and the candidate types of its nominated pair."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    pc = RTCPeerConnection(
        RTCConfiguration(
            iceServers=[RTCIceServer(blocked.url("tcp"), USER, PASSWORD)],
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )
    )
    tracks: asyncio.Queue[Any] = asyncio.Queue()
    pc.on("track", lambda t: tracks.put_nowait(t))
    frames = 0
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            headers = {"Content-Type": "application/sdp"}
            url = stack.url("/whep")
            async with http.post(url, data=pc.localDescription.sdp, headers=headers) as r:
                assert r.status == 201, await r.text()
                answer = await r.text()
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            track = await asyncio.wait_for(tracks.get(), 5)
            end = time.monotonic() + PLAY_BOUND
            while frames < FRAMES_WANTED and time.monotonic() < end:
                try:
                    await asyncio.wait_for(track.recv(), max(0.1, end - time.monotonic()))
                except Exception:  # no frame in time, or the connection failed: counted
                    break
                frames += 1
        pair: list[str] = []
        if frames:
            ice = pc.getTransceivers()[0].receiver.transport.transport
            nominated = ice._connection._nominated[1]  # aioice shows the pair only here
            pair = [nominated.local_candidate.type, nominated.remote_candidate.type]
        return frames, pair
    finally:
        await pc.close()


def test_frames_arrive_through_the_tcp_relay(
    make_stack: Callable[..., Stack], blocked: BlockedTurn
) -> None:
    """Pins: with turn_servers [udp URL, tcp URL] and UDP to coturn blocked, the webrtc
    service gathered no relay candidate (aiortc tried the UDP URL only), so a viewer
    reachable only through the relay got 0 frames. The service gathers on 127.0.0.1 only,
    so the relay is the one way to the viewer: frames now arrive, relay to relay."""
    stack = make_stack(
        cameras=[{"device": "testpattern", "resolution": "320x240", "fps": 15}],
        mirage={"titanium_streams": {"turn_servers": blocked.servers()}},
    )
    frames, pair = asyncio.run(_relay_view(stack, blocked))
    assert frames >= FRAMES_WANTED, f"{frames} frames\n{stack.log()}\n{blocked.tail()}"
    assert pair == ["relay", "relay"], pair
    assert "TURN: using " + blocked.url("tcp") in stack.log(), stack.log()


def test_answer_does_not_wait_for_a_blocked_stun_server(
    make_stack: Callable[..., Stack], blocked: BlockedTurn
) -> None:
    """Pins: with a STUN server configured and UDP to it blocked, every WHEP answer and
    camera-streamer offer waited out aioice's 5 s gathering timeout. Now each is back
    under ANSWER_BOUND, with the host candidate (the STUN query just gets no answer)."""
    stack = make_stack(
        cameras=[{"device": "testpattern", "resolution": "320x240", "fps": 10}],
        webrtc={"ice_addresses": [blocked.local]},
        mirage={"titanium_streams": {"stun_servers": [f"stun:{blocked.server}:{blocked.port}"]}},
    )
    offer = asyncio.run(offer_to_nowhere(blocked.server))
    started = time.monotonic()
    answer, location = _post(stack.url("/whep"), offer, "application/sdp")
    whep_seconds = time.monotonic() - started
    assert f"{blocked.local} " in answer and "typ host" in answer, answer
    _delete(urllib.parse.urljoin(stack.url("/whep"), location))
    body = json.dumps({"type": "request", "iceServers": [], "keepAlive": False})
    started = time.monotonic()
    _post(stack.url("/webrtc"), body, "application/json")
    request_seconds = time.monotonic() - started
    print(f"WHEP answer {whep_seconds:.2f} s, camera-streamer offer {request_seconds:.2f} s")
    assert whep_seconds < ANSWER_BOUND, f"WHEP answer took {whep_seconds:.2f} s"
    assert request_seconds < ANSWER_BOUND, f"offer took {request_seconds:.2f} s"


def _post(url: str, body: str, content_type: str) -> tuple[str, str]:
    import urllib.request

    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=15) as r:
        return r.read().decode(), r.headers.get("Location") or ""


def _delete(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5)


def test_config_check_names_the_turn_url_used(tmp_path: Path, blocked: BlockedTurn) -> None:
    """`config check` says which TURN URL aiortc will use (it used the first silently):
    the TCP one here, the UDP one skipped for not answering; and, for URLs where nothing
    answers, that none did."""
    good = tmp_path / "turn.json"
    streams = {"turn_servers": blocked.servers()}
    good.write_text(json.dumps({"mirage": {"titanium_streams": streams}}))
    out = subprocess.run(
        [TITANIUMCTL, "config", "check", str(good)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert f"TURN: {blocked.url('tcp')} will be used" in out.stdout, out.stdout
    assert f"skipped {blocked.url('udp')} (no answer" in out.stdout, out.stdout

    dead = tmp_path / "dead.json"
    streams = {"turn_servers": [{"urls": [blocked.url("udp")], "username": USER}]}
    dead.write_text(json.dumps({"mirage": {"titanium_streams": streams}}))
    out = subprocess.run(
        [TITANIUMCTL, "config", "check", str(dead)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert "TURN: none of the configured URLs answered" in out.stdout, out.stdout
