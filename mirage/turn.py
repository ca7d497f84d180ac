"""Ephemeral TURN credentials in coturn's REST-API scheme (``use-auth-secret``).

The proxy and coturn share one secret and nothing else: no user database, no call between
them. For each session the proxy mints ``username = "<expiry unix time>:<name>"`` and
``credential = base64(HMAC-SHA1(secret, username))``; coturn recomputes the HMAC and refuses the
allocation once the time in the username has passed (401 Unauthorized, or 438 Stale Nonce on a
running allocation). See docs/mirage-turn.md for the coturn side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

# The form both peers can use: Chromium accepts more, aiortc's parser accepts exactly this
# (host without ':' — so no IPv6 literal —, optional port, optional transport).
_URL = re.compile(
    r"(?P<scheme>turns?):(?P<host>[^?:/\[\]@\s]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>.*))?"
)
# RFC 8489 §14.3: the USERNAME attribute is under 513 bytes.
_MAX_USERNAME_BYTES = 512
# A day: long enough for any viewing session, short enough that a leaked credential dies.
MAX_TTL = 86400


@dataclass(frozen=True)
class TurnUrl:
    """One validated ``turn:``/``turns:`` URL; ``transport`` is the one it resolves to."""

    url: str
    scheme: str
    host: str
    port: int
    transport: str


def parse_turn_url(url: str) -> TurnUrl:
    """Validate ``turn:host[:port][?transport=udp|tcp]`` or ``turns:host[:port][?transport=tcp]``.

    Raises ValueError naming the URL and what was expected."""
    if not isinstance(url, str):
        raise ValueError(f"TURN URL must be a string, got {type(url).__name__}")
    m = _URL.fullmatch(url)
    if m is None:
        raise ValueError(
            f"TURN URL {url!r}: expected turn:HOST[:PORT][?transport=udp|tcp] or "
            "turns:HOST[:PORT][?transport=tcp] (no IPv6 literal: aiortc cannot parse it, "
            "use a host name)"
        )
    scheme, host = m["scheme"], m["host"]
    tls = scheme == "turns"
    port = int(m["port"]) if m["port"] is not None else (5349 if tls else 3478)
    if not 1 <= port <= 65535:
        raise ValueError(f"TURN URL {url!r}: port {port} is not in 1..65535")
    transport = m["transport"]
    if transport is None:
        transport = "tcp" if tls else "udp"
    elif transport not in ("udp", "tcp"):
        raise ValueError(f"TURN URL {url!r}: transport must be udp or tcp, got {transport!r}")
    if tls and transport != "tcp":
        # TURN over DTLS: coturn has it, but neither aiortc nor browsers do.
        raise ValueError(f"TURN URL {url!r}: turns: runs over TLS, so transport must be tcp")
    return TurnUrl(url=url, scheme=scheme, host=host, port=port, transport=transport)


@dataclass(frozen=True)
class TurnCredentials:
    """One minted username/credential pair, valid until ``expires`` (unix seconds)."""

    username: str
    credential: str
    expires: int


def mint(secret: str | bytes, name: str, ttl: int, now: float | None = None) -> TurnCredentials:
    """Mint coturn REST-API credentials for ``name`` that expire ``ttl`` seconds after ``now``.

    ``name`` identifies the session in coturn's log; it may not contain ':' (coturn splits the
    username there to find the time) nor be empty."""
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise ValueError("TURN secret is empty: coturn would accept anyone's credentials")
    if not name or ":" in name or not name.isprintable():
        raise ValueError(f"TURN session name {name!r}: expected printable text without ':'")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
        raise ValueError(f"TURN ttl {ttl!r}: expected whole seconds in 1..{MAX_TTL}")
    expires = int(time.time() if now is None else now) + ttl
    username = f"{expires}:{name}"
    if len(username.encode()) > _MAX_USERNAME_BYTES:
        raise ValueError(f"TURN username for {name[:32]!r}… exceeds {_MAX_USERNAME_BYTES} bytes")
    digest = hmac.new(key, username.encode(), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(digest).decode("ascii"), expires)


def ice_servers(
    secret: str | bytes, urls: list[str], name: str, ttl: int, now: float | None = None
) -> list[dict[str, Any]]:
    """ICE server entries (``{urls, username, credential}``, as RTCConfiguration takes them)
    for ``urls``, all sharing one freshly minted credential.

    One entry per URL, in the given order, so a caller can hand a peer a single one: aiortc
    uses only the first TURN URL of its whole configuration, silently."""
    if not urls:
        raise ValueError("no TURN URLs given")
    parsed = [parse_turn_url(u) for u in urls]
    creds = mint(secret, name, ttl, now)
    return [
        {"urls": p.url, "username": creds.username, "credential": creds.credential} for p in parsed
    ]
