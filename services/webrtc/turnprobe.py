"""Which TURN URL a peer connection gets.

aiortc builds each ICE connection with one TURN server only, the first TURN URL across all
its iceServers, and ignores the rest without a word (``connection_kwargs`` in aiortc's
rtcicetransport.py). With ``turn:…?transport=udp`` listed first and UDP blocked on the way
to the server, no relay candidate is found although the ``transport=tcp`` URL after it
would work. So before a peer connection is made, the configured TURN URLs are probed
concurrently with a real TURN Allocate (aioice's client, the one aiortc will use), and the
first one in the configured order that answered is handed to aiortc first.

Results are cached for :data:`CACHE_SECONDS` so a viewer does not pay a probe each time:
per (URL, user name) for static credentials, whose allocation must succeed; per URL alone
for the per-session credentials the Mirage proxy mints (``<expiry>:<name>``, coturn's REST
scheme), where only reachability carries over from one session to the next (a refusal of
one session's credential says the server is there).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aioice import stun, turn
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcicetransport import parse_stun_turn_uri

from titanium.common.config import IceServer

log = logging.getLogger("titanium.webrtc.turn")
PROBE_TIMEOUT = 1.5
CACHE_SECONDS = 60.0
_EPHEMERAL = re.compile(r"^[0-9]+:")


@dataclass(frozen=True)
class Probe:
    url: str
    answered: bool  # a TURN server answered on this URL's transport
    allocated: bool  # and granted an allocation with the credentials given
    detail: str


_cache: dict[tuple[str, str | None], tuple[float, Probe]] = {}
_last_choice: dict[tuple[str, ...], str | None] = {}


def is_ephemeral(username: str | None) -> bool:
    """A per-session credential in coturn's REST scheme (``<expiry>:<name>``)."""
    return username is not None and _EPHEMERAL.match(username) is not None


async def probe(
    url: str, username: str | None, credential: str | None, timeout: float = PROBE_TIMEOUT
) -> Probe:
    """One TURN Allocate on ``url``, bounded by ``timeout``; the allocation is released."""
    try:
        parsed = parse_stun_turn_uri(url)
    except ValueError:
        return Probe(url, False, False, "not a TURN URL aiortc can use")
    started = time.monotonic()
    try:
        transport, _ = await asyncio.wait_for(
            turn.create_turn_endpoint(
                asyncio.DatagramProtocol,
                server_addr=(parsed["host"], parsed["port"]),
                username=username,
                password=credential,
                ssl=parsed["scheme"] == "turns",
                transport=parsed["transport"],
            ),
            timeout,
        )
    except stun.TransactionFailed as e:
        code = e.response.attributes.get("ERROR-CODE", (0, ""))
        return Probe(url, True, False, f"answered but refused the allocation: {code[0]} {code[1]}")
    except TimeoutError:
        return Probe(url, False, False, f"no answer in {timeout:g} s")
    except Exception as e:  # refused connection, TLS, DNS: a probe only reports them
        return Probe(url, False, False, f"unreachable: {e or type(e).__name__}")
    ms = (time.monotonic() - started) * 1000
    transport.close()
    return Probe(url, True, True, f"allocated in {ms:.0f} ms")


def _usable(result: Probe, ephemeral: bool) -> bool:
    return result.answered if ephemeral else result.allocated


async def probe_all(servers: Sequence[IceServer], fresh: bool = False) -> list[Probe]:
    """A probe of every TURN URL in ``servers``, in their order: from the cache when it is
    recent (unless ``fresh``), the others concurrently."""
    now = time.monotonic()
    wanted: list[tuple[tuple[str, str | None], IceServer, str]] = []
    for server in servers:
        for url in server.urls:
            if url.startswith("turn"):
                key = (url, None if is_ephemeral(server.username) else server.username)
                wanted.append((key, server, url))
    missing = {
        key: (server, url)
        for key, server, url in wanted
        if fresh or key not in _cache or now - _cache[key][0] > CACHE_SECONDS
    }
    results = await asyncio.gather(
        *(probe(url, s.username, s.credential) for s, url in missing.values())
    )
    for key, result in zip(missing, results, strict=True):
        _cache[key] = (time.monotonic(), result)
    return [_cache[key][1] for key, _, _ in wanted]


async def choose(servers: Sequence[IceServer], fresh: bool = False) -> tuple[str | None, str]:
    """The TURN URL aiortc should use (None when none answered), and why."""
    turn_urls = [(s, u) for s in servers for u in s.urls if u.startswith("turn")]
    results = await probe_all(servers, fresh)
    for i, ((server, url), result) in enumerate(zip(turn_urls, results, strict=True)):
        if _usable(result, is_ephemeral(server.username)):
            skipped = [f"{r.url} ({r.detail})" for r in results[:i]]
            why = result.detail + (f"; skipped {', '.join(skipped)}" if skipped else "")
            return url, why
    return None, "; ".join(f"{r.url}: {r.detail}" for r in results)


async def order_turn(servers: Sequence[IceServer]) -> tuple[IceServer, ...]:
    """``servers`` with the TURN URL that works first, as its own entry, so aiortc uses it;
    the STUN servers and every other URL keep their place after it. Unchanged when there
    is no TURN URL, or when none answered (aiortc then tries the first, as before)."""
    if not any(u.startswith("turn") for s in servers for u in s.urls):
        return tuple(servers)
    url, why = await choose(servers)
    key = tuple(u for s in servers for u in s.urls if u.startswith("turn"))
    if _last_choice.get(key, "") != url:  # a line when the choice changes, not per viewer
        if url is None:
            log.warning("TURN: no configured URL answered (%s); relaying may fail", why)
        else:
            log.info("TURN: using %s (%s)", url, why)
    _last_choice[key] = url
    if url is None:
        return tuple(servers)
    owner = next(s for s in servers if url in s.urls)
    rest = [
        IceServer(tuple(u for u in s.urls if u != url), s.username, s.credential)
        if s is owner
        else s
        for s in servers
    ]
    return (
        IceServer((url,), owner.username, owner.credential),
        *(s for s in rest if s.urls),
    )


async def rtc_configuration(servers: Sequence[IceServer]) -> RTCConfiguration:
    """aiortc's configuration for a new peer connection: ``servers``, TURN URL that works
    first (:func:`order_turn`)."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(list(s.urls), s.username, s.credential) for s in await order_turn(servers)
        ]
    )
