"""The bus: ZeroMQ PUB/SUB carrying the messages of messages.py between the services.

A :class:`Publisher` binds one endpoint and never blocks its caller. A PUB socket drops a
message for a subscriber that is past its high-water mark without telling the sender (it
never raises ``zmq.Again``), and it drops it for that subscriber only, which is what a
frame bus wants. So drops are counted where they can be seen, at the receiving end: every
message carries a third frame, a stamp with its publisher's random id and a per-topic
sequence number, and a :class:`Subscriber` counts the numbers it never saw as ``missed``.
A subscriber connects to one or more endpoints and yields only the message types it asked
for; a malformed message is counted as ``bad`` and logged (at most one line per
``BAD_LOG_EVERY`` seconds), never raised to the service.

Both work from a plain or an asyncio context. Publishing always goes through a plain socket
(a non-blocking send needs no event loop, and an asyncio socket would hand a dropped
message's error to a future nobody awaits); a subscriber on an asyncio context is iterated
with ``async for``, one on a plain context is read with :meth:`Subscriber.drain`.
"""

from __future__ import annotations

import logging
import random
import struct
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import zmq
import zmq.asyncio

from titanium.common.endpoints import bind_private, unlink_ipc
from titanium.common.messages import Message, MessageError, decode, encode

log = logging.getLogger("titanium.bus")

DEFAULT_HWM = 1000  # ZeroMQ's own default
BAD_LOG_EVERY = 10.0

AnyContext = zmq.Context[Any] | zmq.asyncio.Context
STAMP = struct.Struct("<QQ")  # publisher id, sequence number within the message's topic
_subscribers: weakref.WeakSet[Subscriber] = weakref.WeakSet()


def losses() -> dict[str, int]:
    """What this process's subscribers lost so far: ``missed`` and ``bad`` messages, for
    its Heartbeat (and so for ``/status``)."""
    subs = list(_subscribers)
    return {"missed": sum(s.missed for s in subs), "bad": sum(s.bad for s in subs)}


class Publisher:
    """A PUB socket bound to ``endpoint``; :meth:`close` unlinks its ipc file."""

    def __init__(
        self, ctx: AnyContext, endpoint: str, hwm: int = DEFAULT_HWM, private: bool = False
    ) -> None:
        """``private``: the ipc file is owner-only (:func:`endpoints.bind_private`)."""
        self.endpoint = endpoint
        self.sent = 0
        self.failed = 0  # sends refused outright (a closed socket); mute peers drop silently
        self._id = random.getrandbits(64)
        self._seq: dict[bytes, int] = {}
        plain: zmq.Context[Any] = zmq.Context.shadow(ctx.underlying)
        self._sock = plain.socket(zmq.PUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        if private:
            bind_private(self._sock, endpoint)
        else:
            self._sock.bind(endpoint)

    def publish(self, msg: Message) -> bool:
        """Send ``msg`` now, never waiting; True when ZeroMQ took it."""
        return self.send(encode(msg))

    def send(self, frames: Sequence[bytes]) -> bool:
        """:meth:`publish` for a message already encoded (``[topic, body]``)."""
        topic = frames[0]
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        try:
            self._sock.send_multipart([*frames, STAMP.pack(self._id, seq)], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            self.failed += 1
            return False
        self.sent += 1
        return True

    def also_bind(self, endpoint: str) -> None:
        """Publish on a second endpoint as well (the governor's events over TCP)."""
        self._sock.bind(endpoint)

    def close(self) -> None:
        self._sock.close()
        unlink_ipc(self.endpoint)


class Subscriber:
    """A SUB socket on ``endpoints`` taking ``types`` (every message when empty)."""

    def __init__(
        self,
        ctx: AnyContext,
        endpoints: Iterable[str],
        types: Iterable[type[Message]] = (),
        hwm: int = DEFAULT_HWM,
    ) -> None:
        self.types = tuple(types)
        self.bad = 0  # malformed messages skipped
        self.missed = 0  # messages of our topics that publishers sent and we never got
        self._last: dict[tuple[int, bytes], int] = {}  # (publisher, topic) -> last seq
        _subscribers.add(self)
        self._bad_logged = float("-inf")
        self._bad_since_log = 0
        self._sock: Any = ctx.socket(zmq.SUB)  # plain or asyncio, as the context is
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, hwm)
        # Topics are prefixes on the wire; the exact type is checked again after decoding.
        self._topics = sorted({t.TOPIC for t in self.types} or {b""})
        self.paused = False
        for topic in self._topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, topic)
        for endpoint in endpoints:
            self._sock.connect(endpoint)

    @property
    def socket(self) -> Any:
        """For a zmq.Poller that waits on several sockets at once."""
        return self._sock

    def connect(self, endpoint: str) -> None:
        self._sock.connect(endpoint)

    def pause(self) -> None:
        """Stop taking our topics. The publishers filter them out from then on (PUB-side
        filtering), so nothing is sent, received or woken for; what was queued before
        still drains."""
        if not self.paused:
            self.paused = True
            for topic in self._topics:
                self._sock.setsockopt(zmq.UNSUBSCRIBE, topic)

    def resume(self) -> None:
        """Take our topics again, from the next message each publisher sends."""
        if self.paused:
            self.paused = False
            # The publishers numbered on while we were away: that gap is not a loss.
            self._last.clear()
            for topic in self._topics:
                self._sock.setsockopt(zmq.SUBSCRIBE, topic)

    def take(self, frames: list[bytes]) -> Message | None:
        """The message in ``frames`` when it is one of ours, else None (a malformed one is
        counted and logged)."""
        try:
            msg = decode(frames)
        except MessageError as e:
            self._count_bad(e)
            return None
        if self.types and not isinstance(msg, self.types):
            return None
        if len(frames) == 3 and len(frames[2]) == STAMP.size:
            self._count_missed(STAMP.unpack(frames[2]), msg.TOPIC)
        return msg

    def _count_missed(self, stamp: tuple[int, int], topic: bytes) -> None:
        publisher, seq = stamp
        key = (publisher, topic)
        last = self._last.get(key)
        if last is not None and seq > last + 1:
            self.missed += seq - last - 1
        self._last[key] = seq

    def _count_bad(self, e: MessageError) -> None:
        self.bad += 1
        self._bad_since_log += 1
        now = time.monotonic()
        if now - self._bad_logged >= BAD_LOG_EVERY:
            log.warning("dropped %d bad message(s) from the bus: %s", self._bad_since_log, e)
            self._bad_logged, self._bad_since_log = now, 0

    def drain(self) -> list[Message]:
        """Every message waiting now, without blocking (a plain context's subscriber)."""
        out: list[Message] = []
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            msg = self.take(frames)
            if msg is not None:
                out.append(msg)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        while True:
            frames = await self._sock.recv_multipart()
            msg = self.take(frames)
            if msg is not None:
                yield msg

    def close(self) -> None:
        self._sock.close()
