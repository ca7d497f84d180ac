"""The NAT harness (tests/integration/nat.py) does what the remote-viewing tests rely on: the
NATs masquerade, the LANs are private, the UDP switches cut what they say and nothing more,
shaping shapes, and Chromium runs as the viewer behind its NAT. Each case is bounded (a few
seconds); one topology serves the module."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.integration.nat import Nat
from tests.integration.netns import inside

PORT = 8080
UDP_PORT = 5000
WAIT = 1.0  # a reply inside an idle namespace takes microseconds; loss is what a miss means


@pytest.fixture(scope="module")
def nat() -> Iterator[Nat]:
    with Nat.create_or_skip() as topo:
        yield topo


@pytest.fixture(autouse=True)
def _clean(nat: Nat) -> Iterator[None]:
    yield
    nat.reset()


class UdpEcho:
    """A UDP socket in ``ns`` on ``ip:port`` that answers each datagram with its sender's
    address, until closed."""

    def __init__(self, ns: str, ip: str, port: int) -> None:
        with inside(ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        # A short timeout, so close() can stop the thread: a socket closed under a blocked
        # recvfrom stays bound, and the next case could not bind the port.
        self.sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                _, sender = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            self.sock.sendto(f"{sender[0]}:{sender[1]}".encode(), sender)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def echo(nat: Nat) -> Iterator[UdpEcho]:
    server = UdpEcho(nat.internet, nat.proxy_ip, UDP_PORT)
    yield server
    server.close()


def _udp_ask(ns: str, ip: str, port: int, local_port: int = 0) -> str | None:
    """The reply to one datagram sent from ``ns`` (from ``local_port``), or None."""
    with inside(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.bind(("0.0.0.0", local_port))
        s.settimeout(WAIT)
        s.sendto(b"ping", (ip, port))
        try:
            return s.recv(2048).decode()
        except TimeoutError:
            return None


def _tcp_peer(nat: Nat, client_ns: str) -> str:
    """The address a TCP server in the internet sees a connection from ``client_ns`` come
    from."""
    with inside(nat.internet):
        server = socket.create_server((nat.proxy_ip, PORT))
    with server:
        server.settimeout(5)
        with inside(client_ns):
            client = socket.socket()
        with client:
            client.settimeout(5)
            client.connect((nat.proxy_ip, PORT))
            conn, peer = server.accept()
            conn.close()
            return str(peer[0])


def test_traffic_to_the_internet_comes_from_the_routers_public_addresses(nat: Nat) -> None:
    """Masquerade works: the internet sees the printer's and the viewer's connections (TCP
    and UDP) from their routers' public addresses, never from the private ones."""
    assert _tcp_peer(nat, nat.printer) == nat.printer_wan
    assert _tcp_peer(nat, nat.viewer) == nat.viewer_wan
    server = UdpEcho(nat.internet, nat.proxy_ip, UDP_PORT)
    try:
        reply = _udp_ask(nat.printer, nat.proxy_ip, UDP_PORT, local_port=40000)
    finally:
        server.close()
    # The port is kept too, which the hole-punching case below relies on.
    assert reply == f"{nat.printer_wan}:40000"


def test_the_internet_drops_packets_to_a_private_address_silently(nat: Nat) -> None:
    """Pins: the internet namespace had no route for a LAN's private address, so coturn's
    send to such a peer (a browser's host candidate) failed at once with ENETUNREACH and
    coturn closed the viewer's whole TURN-over-TCP allocation; on the real internet such a
    packet is dropped on the way and the sender never hears of it."""
    with inside(nat.internet):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for _ in range(3):
            sock.sendto(b"to nobody", (nat.printer_ip, PORT))


def test_the_viewer_cannot_reach_the_printers_private_address(nat: Nat) -> None:
    """The LANs are private: a listener on the printer's LAN address answers the printer
    itself, and the viewer's connection to that address fails (the internet drops it)."""
    with inside(nat.printer):
        server = socket.create_server((nat.printer_ip, PORT))
        own = socket.create_connection((nat.printer_ip, PORT), timeout=5)
    own.close()
    with server, inside(nat.viewer):
        viewer = socket.socket()
    with server, viewer:
        viewer.settimeout(3)
        with pytest.raises(OSError):
            viewer.connect((nat.printer_ip, PORT))


def test_dropping_all_viewer_udp_keeps_tcp(nat: Nat, echo: UdpEcho) -> None:
    """``drop_udp("viewer-all")``: UDP viewer→internet works before, gets no answer after
    (the situation TURN over TCP is for), TCP still connects, and allow_udp() restores UDP."""
    assert _udp_ask(nat.viewer, nat.proxy_ip, UDP_PORT) is not None
    nat.drop_udp("viewer-all")
    assert _udp_ask(nat.viewer, nat.proxy_ip, UDP_PORT) is None
    assert _tcp_peer(nat, nat.viewer) == nat.viewer_wan
    # The printer's side of the internet is untouched.
    assert _udp_ask(nat.printer, nat.proxy_ip, UDP_PORT) is not None
    nat.allow_udp()
    assert _udp_ask(nat.viewer, nat.proxy_ip, UDP_PORT) is not None


def _hole_punch(nat: Nat, port: int) -> bool:
    """Both sides send to the other's public address from ``port`` (masquerade keeps it),
    which opens each NAT for the other; True when the viewer then hears the printer."""
    with inside(nat.printer):
        p = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with inside(nat.viewer):
        v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with p, v:
        p.bind(("0.0.0.0", port))
        v.bind(("0.0.0.0", port))
        v.settimeout(0.2)
        deadline = time.monotonic() + 2 * WAIT
        while time.monotonic() < deadline:
            v.sendto(b"from viewer", (nat.printer_wan, port))
            p.sendto(b"from printer", (nat.viewer_wan, port))
            try:
                if v.recv(2048) == b"from printer":
                    return True
            except TimeoutError:
                continue
        return False


def test_dropping_udp_between_the_nats_stops_p2p_but_not_the_internet(
    nat: Nat, echo: UdpEcho
) -> None:
    """``drop_udp("between-nats")``: a UDP hole punch between the two NATs (what ICE does
    for P2P) works before and fails after, while both sides still reach the internet's
    public addresses over UDP (where TURN over UDP lives)."""
    assert _hole_punch(nat, 41000)
    nat.drop_udp("between-nats")
    # A fresh port pair, so no earlier NAT mapping can help.
    assert not _hole_punch(nat, 41001)
    assert _udp_ask(nat.viewer, nat.proxy_ip, UDP_PORT) is not None
    assert _udp_ask(nat.printer, nat.proxy_ip, UDP_PORT) is not None


def _rtt(nat: Nat, tries: int = 5) -> float:
    """The best of ``tries`` UDP round trips viewer→internet, seconds."""
    best = float("inf")
    for _ in range(tries):
        t0 = time.monotonic()
        if _udp_ask(nat.viewer, nat.proxy_ip, UDP_PORT) is not None:
            best = min(best, time.monotonic() - t0)
    return best


def test_shaping_delays_the_viewers_uplink_and_unshaping_restores_it(
    nat: Nat, echo: UdpEcho
) -> None:
    """``shape(rtt_ms=80)`` makes the viewer's round trip to the internet at least ~80 ms;
    ``unshape()`` brings it back to the unshaped figure (well under 40 ms)."""
    reason = nat.netem_missing()
    if reason:
        pytest.skip(f"only the delay needs netem ({reason}); rate and loss: the next case")
    assert _rtt(nat) < 0.04
    nat.shape(rate="1mbit", rtt_ms=80, loss_pct=0)
    assert _rtt(nat) >= 0.075
    nat.unshape()
    assert _rtt(nat) < 0.04


def test_chromium_in_the_viewer_namespace_loads_a_page_from_the_internet(nat: Nat) -> None:
    """Chromium runs as the viewer: it loads a page served on the internet's proxy address,
    and the server sees the request arrive from the viewer router's public address."""
    seen: list[str] = []

    async def page(request: web.Request) -> web.Response:
        seen.append(str(request.remote))
        return web.Response(text="<!doctype html><title>remote</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    server = nat.serve_http(nat.internet, nat.proxy_ip, PORT, app)
    browser = nat.browser()
    tab = browser.open(server.url("/"))
    assert tab.eval("document.title") == "remote", tab.diagnostics()
    assert seen and set(seen) == {nat.viewer_wan}


OFFER_JS = """(async () => {
  window.pc = new RTCPeerConnection({iceServers: %s, iceTransportPolicy: %s});
  window.got = null;
  const channel = pc.createDataChannel("probe");
  channel.onopen = () => channel.send("hello from the viewer");
  channel.onmessage = (e) => { window.got = e.data; };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
  });
  return pc.localDescription.sdp;
})()"""

SELECTED_PAIR_JS = """(async () => {
  const stats = [...(await pc.getStats()).values()];
  const pair = stats.find((s) => s.type === "candidate-pair" && s.nominated
                                 && s.state === "succeeded");
  if (!pair) return null;
  const local = stats.find((s) => s.id === pair.localCandidateId);
  const remote = stats.find((s) => s.id === pair.remoteCandidateId);
  return [local.candidateType, local.relayProtocol, remote.candidateType, remote.address];
})()"""


async def _printer_answer(offer: str, servers: list[dict[str, Any]], relay: bool) -> Any:
    """An aiortc peer (as the printer's webrtc service would be) answering ``offer`` and
    echoing the data channel; returns (peer, answer SDP)."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    ice = [RTCIceServer(s["urls"], s["username"], s["credential"]) for s in servers]
    policy = RTCIceTransportPolicy.RELAY if relay else RTCIceTransportPolicy.ALL
    pc = RTCPeerConnection(RTCConfiguration(iceServers=ice, iceTransportPolicy=policy))

    @pc.on("datachannel")
    def on_channel(channel: Any) -> None:
        @channel.on("message")
        def on_message(message: str) -> None:
            channel.send(f"echo: {message}")

    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    return pc, pc.localDescription.sdp


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_printer_and_viewer_connect_through_coturn_with_relay_forced(
    nat: Nat, tmp_path_factory: pytest.TempPathFactory, transport: str
) -> None:
    """The whole path the relay tests need: Chromium behind the viewer NAT and an aiortc
    peer behind the printer NAT, both relay-only with credentials minted for coturn in the
    internet, exchange a data channel message; Chromium's selected pair is relay to relay
    through coturn's public address, reached over ``transport``. For TCP all the viewer's
    UDP is dropped, so only TURN over TCP can work. (Signalling is the test itself: offer
    and answer travel over DevTools and the namespaced loop.)"""

    coturn = nat.coturn or nat.start_coturn(tmp_path_factory.mktemp("turn"))
    printer = nat.loop(nat.printer)
    tab = nat.browser().open("about:blank")
    if transport == "tcp":
        nat.drop_udp("viewer-all")
    viewer_servers = coturn.ice_servers("viewer", (transport,))
    offer = tab.eval(OFFER_JS % (json.dumps(viewer_servers), '"relay"'), timeout=15)
    assert "typ relay" in offer, f"{offer}\n{coturn.tail()}\n{tab.diagnostics()}"
    pc, answer = printer.run(
        _printer_answer(offer, coturn.ice_servers("printer", ("udp",)), True), 15
    )
    try:
        tab.eval(f"pc.setRemoteDescription({json.dumps({'type': 'answer', 'sdp': answer})})")
        got = tab.wait_for("window.got", timeout=15)
        assert got == "echo: hello from the viewer"
        pair = tab.wait_for(SELECTED_PAIR_JS, timeout=5)
        assert pair == ["relay", transport, "relay", nat.turn_ip], pair
    finally:
        printer.run(pc.close(), 5)


def test_printer_and_viewer_connect_peer_to_peer_through_both_nats(
    nat: Nat, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With STUN only (coturn's), the two peers find each other's public mapping and punch
    through both NATs: the data channel works and Chromium's selected pair is not a relay,
    its far end the printer router's public address. The P2P tests build on this."""
    coturn = nat.coturn or nat.start_coturn(tmp_path_factory.mktemp("turn"))
    stun = [{"urls": f"stun:{coturn.ip}:{coturn.port}", "username": None, "credential": None}]
    printer = nat.loop(nat.printer)
    tab = nat.browser().open("about:blank")
    offer = tab.eval(OFFER_JS % (json.dumps([{"urls": stun[0]["urls"]}]), '"all"'), timeout=15)
    assert "typ srflx" in offer, f"{offer}\n{tab.diagnostics()}"
    pc, answer = printer.run(_printer_answer(offer, stun, relay=False), 15)
    try:
        tab.eval(f"pc.setRemoteDescription({json.dumps({'type': 'answer', 'sdp': answer})})")
        assert tab.wait_for("window.got", timeout=15) == "echo: hello from the viewer"
        pair = tab.wait_for(SELECTED_PAIR_JS, timeout=5)
        assert "relay" not in (pair[0], pair[2]) and pair[3] == nat.printer_wan, pair
    finally:
        printer.run(pc.close(), 5)


def _burst_back(nat: Nat, count: int, size: int) -> float:
    """The share of ``count`` datagrams of ``size`` bytes, sent from the viewer one every
    millisecond, that the internet's echo answered."""
    with inside(nat.viewer):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.settimeout(0.5)
        for _ in range(count):
            s.sendto(b"x" * size, (nat.proxy_ip, UDP_PORT))
            time.sleep(0.001)
        back = 0
        try:
            while back < count:
                s.recvfrom(2048)
                back += 1
        except TimeoutError:
            pass
    return back / count


def test_shaping_without_netem_limits_the_rate_and_loses_packets(nat: Nat, echo: UdpEcho) -> None:
    """Where the kernel has no netem, ``shape(rtt_ms=0)`` still shapes: a 1 Mbit/s cap lets
    through well under half of a ~10 Mbit/s burst, 25 % loss each way answers about
    0.75² of the datagrams, and ``unshape()`` brings every answer back. An ``rtt_ms``
    above 0 says delay needs netem. Pins the harness's tbf/nft shaping: before it, shape()
    raised wherever netem was missing, as on this machine."""
    if nat.netem_missing() is None:
        pytest.skip("netem is present: shape() uses it (the case above)")
    assert _burst_back(nat, 150, 1200) >= 0.95
    nat.shape(rate="1mbit", rtt_ms=0, loss_pct=0)
    assert _burst_back(nat, 150, 1200) < 0.6
    nat.shape(rate="100mbit", rtt_ms=0, loss_pct=25)
    assert 0.3 <= _burst_back(nat, 200, 100) <= 0.8
    with pytest.raises(AssertionError, match="netem"):
        nat.shape(rtt_ms=80)
    nat.unshape()
    assert _burst_back(nat, 150, 1200) >= 0.95
