"""HOST:PORT, parsed once: listening addresses in the config, and the URLs printed for them.

IPv6 hosts are written in brackets wherever a port follows (``[::1]:8080``,
``http://[::1]:8080/``, ``tcp://[::1]:8080``); the host itself is kept without them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

# Addresses that mean "every interface": a client on this machine reaches them on loopback.
WILDCARDS = frozenset(("", "0.0.0.0", "::"))


@dataclass(frozen=True)
class Address:
    host: str  # without brackets
    port: int

    @property
    def wildcard(self) -> bool:
        return self.host in WILDCARDS

    @property
    def _bracketed(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def __str__(self) -> str:
        return f"{self._bracketed}:{self.port}"

    def local(self) -> Address:
        """Where a client on this machine connects: loopback for a wildcard."""
        return Address("127.0.0.1", self.port) if self.wildcard else self

    def http_url(self, path: str = "/") -> str:
        return f"http://{self}{path}"

    def zmq(self, port_offset: int = 0) -> str:
        return f"tcp://{Address(self.host, self.port + port_offset)}"


def reachable(listen: Address) -> list[Address]:
    """Where clients reach ``listen``: its local address first, then for a wildcard the
    machine's IPv4 LAN addresses (``hostname -I``; none when it cannot say), which is what
    a printer UI on another machine must be given."""
    found = [listen.local()]
    if not listen.wildcard:
        return found
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return found
    return found + [Address(a, listen.port) for a in out.stdout.split() if ":" not in a]


def parse_address(value: str, lowest_port: int = 0, highest_port: int = 65535) -> Address:
    """``HOST:PORT`` (``[V6]:PORT`` for IPv6; the last colon splits an unbracketed one)
    → Address; ValueError saying the form."""
    host, sep, port = value.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if (
        not sep
        or not bare
        or not port.isdigit()
        or not lowest_port <= int(port) <= highest_port
        or "[" in bare
        or "]" in bare
    ):
        raise ValueError(
            f"HOST:PORT with a port from {lowest_port} to {highest_port}, for example "
            "127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080"
        )
    return Address(bare, int(port))
