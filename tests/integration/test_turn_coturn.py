"""Credentials minted by titanium.mirage.turn against a real Debian coturn (``turnserver``)
with ``use-auth-secret``: aiortc peers, as the webrtc service would run them, gather relay
candidates and talk through the relay; expired credentials and a wrong secret are refused."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import coturn as coturn_cmd
from titanium.mirage.turn import ice_servers, mint

SECRET = "mirage-test-secret"
REALM = "mirage.test"
# Each case is bounded: gathering against a local coturn takes milliseconds, so these only
# catch a hang, generously for a loaded 2-core machine.
GATHER_BOUND = 10.0
CONNECT_BOUND = 10.0


def _free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free for both UDP and TCP on 127.0.0.1")


class Coturn:
    """turnserver on 127.0.0.1:``port`` with the REST-API shared secret, no TLS, no CLI, no
    config file (``-n``: /etc/turnserver.conf must not change the test), its log, pid and user
    database in ``tmp``. Stopped by its PID."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.tmp = tmp
        argv = coturn_cmd.command(
            tmp, "127.0.0.1", self.port, "secret", secret=SECRET, realm=REALM, loopback_peers=True
        )
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            coturn_cmd.wait_answering(self.proc, tmp, "127.0.0.1", self.port)
        except BaseException:
            self.close()
            raise

    def url(self, transport: str) -> str:
        return f"turn:127.0.0.1:{self.port}?transport={transport}"

    def tail(self) -> str:
        return coturn_cmd.tail(self.tmp)

    def close(self) -> None:
        coturn_cmd.stop(self.proc)


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    if shutil.which("turnserver") is None:
        pytest.skip("needs Debian's coturn (turnserver): apt-get install coturn")
    server = Coturn(tmp_path)
    yield server
    server.close()


def _config(entries: list[dict[str, Any]]) -> Any:
    from aiortc import RTCConfiguration, RTCIceServer
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    servers = [RTCIceServer(e["urls"], e["username"], e["credential"]) for e in entries]
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY)


def _candidate_types(sdp: str) -> list[tuple[str, str]]:
    """(protocol, type) of each candidate line; a relay's protocol is the relayed one (UDP)."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            f = line.split()
            out.append((f[2].lower(), f[7]))
    return out


async def _gather(entries: list[dict[str, Any]]) -> str:
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection(_config(entries))
    try:
        pc.createDataChannel("probe")
        await asyncio.wait_for(pc.setLocalDescription(await pc.createOffer()), GATHER_BOUND)
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_minted_credentials_relay_a_data_channel(coturn: Coturn, transport: str) -> None:
    """Two relay-only aiortc peers, each given minted credentials for one TURN URL, gather
    relay candidates from coturn, connect through it and exchange a data channel message;
    the selected pair is relay to relay."""
    from aiortc import RTCPeerConnection

    async def run() -> tuple[str, list[str], str]:
        offerer = RTCPeerConnection(
            _config(ice_servers(SECRET, [coturn.url(transport)], "viewer-1", ttl=600))
        )
        answerer = RTCPeerConnection(
            _config(ice_servers(SECRET, [coturn.url(transport)], "device-1", ttl=600))
        )
        got: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        try:
            channel = offerer.createDataChannel("chat")

            @answerer.on("datachannel")
            def on_channel(remote: Any) -> None:
                @remote.on("message")
                def on_message(message: str) -> None:
                    if not got.done():
                        got.set_result(message)

            @channel.on("open")
            def on_open() -> None:
                channel.send("through the relay")

            await offerer.setLocalDescription(await offerer.createOffer())
            offer_sdp = offerer.localDescription.sdp
            await answerer.setRemoteDescription(offerer.localDescription)
            await answerer.setLocalDescription(await answerer.createAnswer())
            await offerer.setRemoteDescription(answerer.localDescription)
            message = await asyncio.wait_for(got, CONNECT_BOUND)
            ice = offerer.sctp.transport.transport  # type: ignore[union-attr]
            pair = ice._connection._nominated[1]  # aioice exposes the nominated pair only here
            return (
                offer_sdp,
                [pair.local_candidate.type, pair.remote_candidate.type],
                message,
            )
        finally:
            await offerer.close()
            await answerer.close()

    offer_sdp, pair_types, message = asyncio.run(run())
    assert message == "through the relay", coturn.tail()
    assert _candidate_types(offer_sdp) == [("udp", "relay")], offer_sdp
    assert pair_types == ["relay", "relay"]


def test_expired_credential_gets_no_relay(coturn: Coturn) -> None:
    """A credential whose expiry has passed (minted for a start two hours ago, ttl one hour)
    is refused by coturn: no relay candidate is gathered. A fresh one from the same secret,
    against the same server, does gather one, so the refusal is the expiry's."""
    expired = ice_servers(SECRET, [coturn.url("udp")], "late", ttl=3600, now=time.time() - 7200)
    assert _candidate_types(asyncio.run(_gather(expired))) == []
    fresh = ice_servers(SECRET, [coturn.url("udp")], "late", ttl=3600)
    assert _candidate_types(asyncio.run(_gather(fresh))) == [("udp", "relay")], coturn.tail()


def test_wrong_secret_gets_no_relay(coturn: Coturn) -> None:
    """Credentials minted with a secret coturn does not share are refused: no relay."""
    wrong = ice_servers("not-" + SECRET, [coturn.url("udp")], "intruder", ttl=600)
    assert _candidate_types(asyncio.run(_gather(wrong))) == []


@pytest.mark.parametrize("case", ["expired", "wrong-secret"])
def test_coturn_answers_unauthorized(coturn: Coturn, case: str) -> None:
    """The refusal is coturn's authentication (401 Unauthorized), not a lost packet or a
    timeout: an aioice allocation with the bad credential fails with that error code."""
    from aioice import stun, turn

    if case == "expired":
        creds = mint(SECRET, "late", ttl=60, now=time.time() - 3600)
    else:
        creds = mint("not-" + SECRET, "intruder", ttl=600)

    async def allocate() -> int:
        try:
            transport, _ = await asyncio.wait_for(
                turn.create_turn_endpoint(
                    asyncio.DatagramProtocol,
                    server_addr=("127.0.0.1", coturn.port),
                    username=creds.username,
                    password=creds.credential,
                ),
                GATHER_BOUND,
            )
        except stun.TransactionFailed as e:
            return int(e.response.attributes["ERROR-CODE"][0])
        transport.close()
        return 0

    assert asyncio.run(allocate()) in (401, 438), coturn.tail()
