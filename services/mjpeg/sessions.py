"""Sessions tied to their token and capped per token and per client address.

A session is an MJPEG stream held here or a WebRTC peer held by the webrtc service; both
count against ``sessions_per_token`` and ``sessions_per_address`` (titanium.http.limits).
The webrtc service checks its own peers when one is opened (the front door tells it how
many streams the token and address hold here); a stream asks it for their peers.

Revoking a token ends its sessions: :func:`end_sessions_of` cancels its streams' handlers
(as the governor's shedding does, which also ends one stuck writing to a slow client) and
asks the webrtc service to close its peers (``sessions.close_token``). A token that expires
ends them the same way (:func:`end_expired`): a session lives no longer than its token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from titanium.common.rpc import RpcError
from titanium.common.tokens import Grant
from titanium.services.mjpeg.keys import WEBRTC_RPC
from titanium.services.mjpeg.limits import LIMITS, client_address, grant_of

log = logging.getLogger("titanium.mjpeg.sessions")
COUNT_TIMEOUT = 0.3  # the webrtc service's peer count; a stream opens without it
CLOSE_TIMEOUT = 1.0  # revocation must end peers within 2 s
SESSION_RETRY_AFTER = 10  # a session must end first: nobody knows when


class Streams:
    """The MJPEG streams open now: each handler's task, its token id and its address."""

    def __init__(self) -> None:
        self._open: dict[asyncio.Task[object], tuple[str | None, str]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._expires: dict[str, float] = {}  # token id -> expiry, of tokens that opened any

    def remember(self, grant: Grant | None) -> None:
        """A session (stream or peer) opens with ``grant``: end it when the token expires."""
        if grant is not None:
            self._expires[grant.id] = grant.expires

    def expired(self, now: float) -> set[str]:
        """The tokens remembered that have expired by ``now`` (each told once)."""
        gone = {tid for tid, at in self._expires.items() if at <= now}
        for tid in gone:
            del self._expires[tid]
        return gone

    def hold(self, task: asyncio.Task[object], token: str | None, address: str) -> None:
        self._open[task] = (token, address)

    def release(self, task: asyncio.Task[object]) -> None:
        self._open.pop(task, None)

    def keep(self, task: asyncio.Task[None]) -> None:
        """Keep a background task referenced until it is done."""
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def held(self, token: str | None, address: str) -> tuple[int, int]:
        """How many streams ``token`` (0 for None) and ``address`` hold."""
        owners = self._open.values()
        by_token = sum(1 for t, _ in owners if token is not None and t == token)
        return by_token, sum(1 for _, a in owners if a == address)

    def end(self, token_ids: Iterable[str]) -> int:
        ids = set(token_ids)
        ended = [task for task, (t, _) in self._open.items() if t in ids]
        for task in ended:
            task.cancel()
        return len(ended)


STREAMS = web.AppKey("streams", Streams)


async def _peers(app: web.Application, token: str | None, address: str) -> tuple[int, int]:
    try:
        got = await app[WEBRTC_RPC].call(
            "sessions.count", timeout=COUNT_TIMEOUT, token=token, address=address
        )
    except RpcError:  # no webrtc service: it holds no peers that are being served
        return 0, 0
    return int(got.get("token", 0)), int(got.get("address", 0))


@contextlib.asynccontextmanager
async def stream_session(request: web.Request) -> AsyncIterator[None]:
    """Hold one MJPEG stream for the request's token and address while the block runs;
    429 when either already holds its cap of sessions."""
    streams = request.app[STREAMS]
    grant = grant_of(request)
    streams.remember(grant)
    token = grant.id if grant is not None else None
    address = client_address(request)
    task = asyncio.current_task()
    assert task is not None
    # Held before the peers are counted: streams opened meanwhile see this one.
    streams.hold(task, token, address)
    try:
        peer_token, peer_address = await _peers(request.app, token, address)
        by_token, by_address = streams.held(token, address)
        refusal = over_cap(request, by_token + peer_token, by_address + peer_address)
        if refusal is not None:
            raise refusal
        yield
    finally:
        streams.release(task)


def over_cap(request: web.Request, by_token: int, by_address: int) -> web.HTTPException | None:
    """The 429 for a session that would be one more than a cap (the counts include it)."""
    limits = request.app[LIMITS]
    c = limits.config
    if grant_of(request) is not None and by_token > c.sessions_per_token:
        why = f"this token already has {c.sessions_per_token} streams and peers open"
        key = "sessions_per_token"
    elif by_address > c.sessions_per_address:
        why = f"this address already has {c.sessions_per_address} streams and peers open"
        key = "sessions_per_address"
    else:
        return None
    return limits.refuse("sessions", f"{why} (titanium.http.limits.{key})", SESSION_RETRY_AFTER)


def end_sessions_of(app: web.Application, token_ids: Iterable[str]) -> asyncio.Task[None]:
    """End every session of these (revoked) tokens: their streams at once, their WebRTC
    peers by the webrtc service. Returns the task that closes the peers, to await or not
    (it is kept until done, and logs its own failure)."""
    ids = sorted(set(token_ids))
    streams = app[STREAMS]
    ended = streams.end(ids)

    async def close_peers() -> None:
        closed = 0
        for token_id in ids:
            try:
                got = await app[WEBRTC_RPC].call(
                    "sessions.close_token", timeout=CLOSE_TIMEOUT, id=token_id
                )
                closed += int(got.get("closed", 0))
            except RpcError as e:
                log.warning("token %s revoked, its WebRTC peers may live on: %s", token_id, e)
        if ended or closed:
            log.info("revoked %s: ended %d streams and %d peers", ", ".join(ids), ended, closed)

    task = asyncio.ensure_future(close_peers())
    streams.keep(task)
    return task


EXPIRY_CHECK = 0.5  # seconds: an expired token's sessions end within this of its expiry


async def end_expired(app: web.Application) -> None:
    """End the sessions of tokens as they expire, until cancelled."""
    while True:
        await asyncio.sleep(EXPIRY_CHECK)
        expired = app[STREAMS].expired(time.time())
        if expired:
            log.info("token(s) %s expired: ending their sessions", ", ".join(sorted(expired)))
            await end_sessions_of(app, expired)
