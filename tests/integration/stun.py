"""A STUN server's readiness, asked the way a client asks: a Binding request over UDP; and a
WHEP offer whose connectivity checks go nowhere, for tests that time the answer."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable

BINDING_REQUEST = 0x0001
BINDING_SUCCESS = b"\x01\x01"
MAGIC_COOKIE = 0x2112A442


def wait_for_binding(
    host: str, port: int, still_running: Callable[[], str | None], timeout: float = 10
) -> None:
    """Until ``host:port`` answers a Binding request with success; AssertionError after
    ``timeout``, or at once when ``still_running()`` says why the server is gone."""
    request = struct.pack("!HHI12s", BINDING_REQUEST, 0, MAGIC_COOKIE, os.urandom(12))
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            gone = still_running()
            if gone:
                raise AssertionError(gone)
            s.sendto(request, (host, port))
            try:
                if s.recv(2048)[:2] == BINDING_SUCCESS:
                    return
            except TimeoutError:
                continue
    raise AssertionError(f"the STUN server did not answer a Binding request in {timeout:g} s")


async def offer_to_nowhere(peer: str) -> str:
    """A browser-like recvonly offer whose only candidate is ``peer`` port 9 (nothing listens
    there): the service's connectivity checks then stay inside the test's namespace. (An
    offer with no candidate at all makes aioice drop the component and gather nothing.)"""
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            continue
        if line == "a=end-of-candidates":
            lines.append(f"a=candidate:1 1 udp 2122260223 {peer} 9 typ host")
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"
