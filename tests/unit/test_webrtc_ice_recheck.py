"""The printer's ICE agent (aioice, controlled when it answers WHEP) after ICE completed:
real aioice connections over real UDP on loopback, and a second path of the viewer that is a
plain UDP socket speaking STUN, so the test sees exactly what the printer sends where."""

from __future__ import annotations

import asyncio

import aioice
import aioice.ice
import pytest
from aioice import stun

from titanium.services.webrtc.ice import keep_checking

PRINTER, VIEWER, LATE = "127.0.0.1", "127.0.0.2", "127.0.0.3"
BOUND = 3.0  # seconds; the printer's recheck paces checks at tens of milliseconds


@pytest.fixture
def rechecking(monkeypatch: pytest.MonkeyPatch) -> None:
    # keep_checking() patches aioice's class for the process: undone after the test.
    for name in ("connect", "close"):
        monkeypatch.setattr(aioice.ice.Connection, name, getattr(aioice.ice.Connection, name))
    keep_checking()


class LatePath(asyncio.DatagramProtocol):
    """The viewer's path that shows up after ICE completed (a trickled srflx, say): answers
    the printer's checks, then nominates itself with USE-CANDIDATE, as the controlling
    browser does when it switches to a better pair."""

    def __init__(self, printer: aioice.Connection, viewer: aioice.Connection) -> None:
        self.printer, self.viewer = printer, viewer
        self.checked = asyncio.Event()
        self.media: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        try:
            message = stun.parse_message(data)
        except ValueError:
            self.media.put_nowait(data)
            return
        if message.message_class != stun.Class.REQUEST:
            return
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=message.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        response.add_message_integrity(self.viewer.local_password.encode())
        self.transport.sendto(bytes(response), addr)
        self.checked.set()
        self.nominate(addr)

    def nominate(self, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        request.attributes["USERNAME"] = (
            f"{self.printer.local_username}:{self.viewer.local_username}"
        )
        request.attributes["PRIORITY"] = aioice.candidate.candidate_priority(1, "host")
        request.attributes["ICE-CONTROLLING"] = self.viewer._tie_breaker
        request.attributes["USE-CANDIDATE"] = None
        request.add_message_integrity(self.printer.local_password.encode())
        self.transport.sendto(bytes(request), addr)


async def _gather(conn: aioice.Connection, address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda **_: [address])
    await conn.gather_candidates()


async def _printer_follows_the_late_path(monkeypatch: pytest.MonkeyPatch) -> None:
    printer = aioice.Connection(ice_controlling=False)
    viewer = aioice.Connection(ice_controlling=True)
    loop = asyncio.get_running_loop()
    transport, late = await loop.create_datagram_endpoint(
        lambda: LatePath(printer, viewer), local_addr=(LATE, 0)
    )
    try:
        await _gather(printer, PRINTER, monkeypatch)
        await _gather(viewer, VIEWER, monkeypatch)
        for a, b in ((printer, viewer), (viewer, printer)):
            a.remote_username, a.remote_password = b.local_username, b.local_password
            for cand in b.local_candidates:
                await a.add_remote_candidate(cand)
        await viewer.add_remote_candidate(None)
        await asyncio.wait_for(asyncio.gather(printer.connect(), viewer.connect()), BOUND)
        assert printer._nominated[1].remote_candidate.host == VIEWER

        port = transport.get_extra_info("sockname")[1]
        await printer.add_remote_candidate(
            aioice.Candidate(
                foundation="late", component=1, transport="udp",
                priority=aioice.candidate.candidate_priority(1, "host") + 1,
                host=LATE, port=port, type="host",
            )
        )  # fmt: skip
        try:
            await asyncio.wait_for(late.checked.wait(), BOUND)
        except TimeoutError:
            raise AssertionError("the printer never checked a candidate trickled late") from None

        async def followed() -> None:
            while printer._nominated[1].remote_candidate.host != LATE:
                await asyncio.sleep(0.02)

        try:
            await asyncio.wait_for(followed(), BOUND)
        except TimeoutError:
            raise AssertionError(
                f"the printer still sends to {printer._nominated[1]} after the viewer"
                " nominated its new path"
            ) from None
        await printer.send(b"media")
        assert await asyncio.wait_for(late.media.get(), BOUND) == b"media"
    finally:
        transport.close()
        await printer.close()
        await viewer.close()


def test_printer_checks_a_late_candidate_and_follows_the_viewers_nomination(
    rechecking: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pins the remote-viewing "ICE and DTLS connected, no video" failure: once the first
    pair was nominated, aioice stopped checking, so a candidate the viewer trickled later
    (its srflx: P2P through both NATs) was never checked by the printer, and when the
    viewer switched to a better pair with USE-CANDIDATE the printer kept sending on the
    first one, which the viewer then pruned. The printer must check the late candidate,
    move to it once the viewer nominates it, and send its media there."""
    asyncio.run(_printer_follows_the_late_path(monkeypatch))
