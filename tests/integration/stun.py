"""A STUN server's readiness, asked the way a client asks: a Binding request over UDP."""

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
