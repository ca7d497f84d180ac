"""Rate limits of the front door, per client address and per token.

A token bucket per key (``("address", "192.0.2.7")``, ``("token", id)``) for signalling and
one for snapshot polling (titanium.http.limits): a request needs a token from the bucket of
its address and, when it carries one, of its token. Over a limit the client gets 429 with
``Retry-After`` (whole seconds) and a reason; other keys' buckets are untouched, so everyone
else keeps being served. The refusals are counted for /status.

The buckets themselves are titanium.common.ratelimit's.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from titanium.common.config import LimitsConfig
from titanium.common.ratelimit import Key, RateLimit
from titanium.common.tokens import Grant
from titanium.services.mjpeg.errors import http_error
from titanium.services.mjpeg.keys import GRANT


class Limits:
    """The front door's limits in force and the requests refused so far."""

    def __init__(self, config: LimitsConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.signalling = RateLimit(config.signalling_rate, config.signalling_burst, clock)
        self.snapshot = RateLimit(config.snapshot_rate, config.snapshot_burst, clock)
        self.refused = {"signalling": 0, "snapshot": 0, "sessions": 0}

    def refuse(self, what: str, reason: str, retry_after: float) -> web.HTTPException:
        """The 429 to raise for ``what`` (a key of ``refused``), counted."""
        self.refused[what] += 1
        exc = http_error(429, reason)
        exc.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return exc

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "signalling": {"rate": c.signalling_rate, "burst": c.signalling_burst},
            "snapshot": {"rate": c.snapshot_rate, "burst": c.snapshot_burst},
            "sessions_per_token": c.sessions_per_token,
            "sessions_per_address": c.sessions_per_address,
            "refused": dict(self.refused),
            "clients_tracked": len(self.signalling) + len(self.snapshot),
        }


LIMITS = web.AppKey("limits", Limits)


def grant_of(request: web.Request) -> Grant | None:
    """The request's grant, as the auth middleware left it; None with auth off or for an
    exempt request (then only the address limits apply)."""
    grant = request.get(GRANT)
    return grant if isinstance(grant, Grant) else None


def client_address(request: web.Request) -> str:
    """Who sent the request. Behind nginx every client comes from 127.0.0.1, so limits
    per address would put every viewer in one bucket: when the peer is loopback, the
    address nginx forwards is taken instead. The rightmost X-Forwarded-For entry is the
    one nginx saw itself (``proxy_add_x_forwarded_for`` appends it; anything to its left
    came from the client); X-Real-IP is nginx's other usual header. A peer that is not
    loopback is never trusted to name another address."""
    peer = request.remote or ""
    if not _loopback(peer):
        return peer
    forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
    real = request.headers.get("X-Real-IP", "").strip()
    for named in (forwarded, real):
        if named and _address(named):
            return named
    return peer


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def keys_of(request: web.Request) -> list[Key]:
    """The keys whose limits a request counts against: its address and its token."""
    keys: list[Key] = [("address", client_address(request))]
    grant = grant_of(request)
    if grant is not None:
        keys.append(("token", grant.id))
    return keys


def limit_signalling(request: web.Request) -> None:
    """Count one signalling request (any dialect, any step); 429 when over the limit."""
    c = request.app[LIMITS].config
    _limit(request, "signalling", c.signalling_rate, c.signalling_burst)


def limit_snapshot(request: web.Request) -> None:
    """Count one snapshot; 429 when over the limit."""
    c = request.app[LIMITS].config
    _limit(request, "snapshot", c.snapshot_rate, c.snapshot_burst)


def _limit(request: web.Request, kind: str, rate: float, burst: int) -> None:
    limits = request.app[LIMITS]
    bucket = limits.signalling if kind == "signalling" else limits.snapshot
    wait = bucket.take(keys_of(request))
    if wait:
        what = "signalling requests" if kind == "signalling" else "snapshots"
        raise limits.refuse(
            kind,
            f"too many {what}: {rate:g} a second, {burst} at once (titanium.http.limits)",
            wait,
        )
