"""The proxy's limits: signalling requests per source address, per token and per device,
sessions open at once per token and per device, messages from a device's WebSocket, and
admin requests per address (the ``limits`` section of the proxy config, mirage/config.py).

Each is a token bucket (titanium.common.ratelimit) of its own: a flood from one address, with
one token or at one device empties that key's bucket and nobody else's. Over a limit a viewer
gets 429 with ``Retry-After`` and a reason naming the limit and its config key; a device
gets its WebSocket closed with 4429 and that reason.

Behind a reverse proxy every request comes from its address: ``trusted_proxies`` lists the
peers whose ``X-Forwarded-For`` is believed. The header is read from the right, skipping
the trusted hops, because anything further left came from the client and may be made up.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import Counter
from collections.abc import Callable

from aiohttp import web

from titanium.common.ratelimit import RateLimit
from titanium.mirage.config import Network, ProxyLimits

# A session cap frees up when a viewer leaves, which the proxy cannot foresee: this is how
# soon a refused viewer may try again.
SESSION_RETRY_AFTER = 5


class LimitError(Exception):
    """Over a limit: the reason (naming the config key) and the seconds until it clears."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = max(1, math.ceil(retry_after))

    def response(self) -> web.HTTPException:
        exc = web.HTTPException(text=self.reason, content_type="text/plain")
        exc.set_status(429)
        exc.headers["Retry-After"] = str(self.retry_after)
        return exc


def _reason(what: str, rate: float, burst: int, key: str) -> str:
    keys = f"limits.{key}_rate, limits.{key}_burst"
    return f"too many {what}: {rate:g} a second, {burst} at once ({keys})"


class ProxyLimiter:
    def __init__(
        self,
        config: ProxyLimits,
        trusted: tuple[Network, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        c = self.config = config
        self.trusted = trusted
        self.address = RateLimit(c.address_rate, c.address_burst, clock)
        self.token = RateLimit(c.token_rate, c.token_burst, clock)
        self.device = RateLimit(c.device_rate, c.device_burst, clock)
        self.messages = RateLimit(c.device_messages_rate, c.device_messages_burst, clock)
        self.admin = RateLimit(c.admin_rate, c.admin_burst, clock)
        # Offers on their way to a printer hold a session slot before the session exists.
        self.starting: Counter[tuple[str, str]] = Counter()

    # -- who is asking ------------------------------------------------------------------

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def client(self, request: web.Request) -> str:
        peer = request.remote or ""
        if not self._trusted(peer):
            return peer
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed(hops):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return peer  # a garbled header: the proxy's own peer is all that is known
            if not self._trusted(hop):
                return hop
        return peer

    # -- limits -------------------------------------------------------------------------

    def signalling_address(self, address: str) -> None:
        c = self.config
        wait = self.address.take([("address", address)])
        if wait:
            reason = _reason(
                "signalling requests from this address", c.address_rate, c.address_burst, "address"
            )
            raise LimitError(reason, wait)

    def signalling_grant(self, token_id: str, device: str) -> None:
        """Count a request against its token and its device: both or, when either is
        empty, neither (a token held back does not use up the device's bucket)."""
        c = self.config
        token, at = [("token", token_id)], [("device", device)]
        wait = self.token.wait(token)
        if wait:
            reason = _reason(
                "signalling requests with this token", c.token_rate, c.token_burst, "token"
            )
            raise LimitError(reason, wait)
        wait = self.device.take(at)
        if wait:
            reason = _reason(
                "signalling requests to this device", c.device_rate, c.device_burst, "device"
            )
            raise LimitError(reason, wait)
        self.token.take(token)

    def sessions(self, token_id: str, device: str, per_token: int, per_device: int) -> None:
        """Refuse a new session when the token's or the device's are at their cap; the open
        ones are counted by the caller, the ones still starting here."""
        c = self.config
        if per_token + self.starting["token", token_id] >= c.sessions_per_token:
            raise LimitError(
                f"this token has {c.sessions_per_token} sessions open, its cap "
                "(limits.sessions_per_token)",
                SESSION_RETRY_AFTER,
            )
        if per_device + self.starting["device", device] >= c.sessions_per_device:
            raise LimitError(
                f"this device has {c.sessions_per_device} sessions open, its cap "
                "(limits.sessions_per_device)",
                SESSION_RETRY_AFTER,
            )

    def device_message(self, device: str) -> str | None:
        """None while the device keeps within its message rate, else the close reason."""
        if not self.messages.take([("device", device)]):
            return None
        c = self.config
        return _reason(
            "messages", c.device_messages_rate, c.device_messages_burst, "device_messages"
        )

    def admin_request(self, address: str) -> None:
        c = self.config
        wait = self.admin.take([("address", address)])
        if wait:
            reason = _reason("admin requests", c.admin_rate, c.admin_burst, "admin")
            raise LimitError(reason, wait)
