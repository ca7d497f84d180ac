"""common/bus.py over real ipc sockets: publish, drop and count, filter by type, skip bad
messages, iterate from asyncio, unlink on close."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from tests.stack import Stack
from titanium.common.bus import Publisher, Subscriber
from titanium.common.endpoints import ipc_path
from titanium.common.messages import Heartbeat, KeyframeRequest, Message, ViewerCount


def wait_joined(pub: Publisher, sub: Subscriber, probe: Message) -> None:
    """PUB/SUB joins asynchronously: publish until the subscriber sees one."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pub.publish(probe)
        time.sleep(0.02)
        if sub.drain():
            return
    raise AssertionError("the subscriber never joined")


def test_publish_filter_by_type_and_skip_bad_messages(tmp_path: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    a, b = f"ipc://{tmp_path}/a.pub", f"ipc://{tmp_path}/b.pub"
    pa, pb = Publisher(ctx, a), Publisher(ctx, b)
    sub = Subscriber(ctx, [a, b], (Heartbeat, ViewerCount))
    try:
        beat = Heartbeat("t", 1, 0.0)
        wait_joined(pa, sub, beat)
        wait_joined(pb, sub, beat)
        pa.publish(KeyframeRequest("cam0", "join"))  # not asked for
        pa.send([Heartbeat.TOPIC, b"\xc1 not msgpack"])  # malformed
        pb.publish(ViewerCount("mjpeg", "cam0", {"medium": 2}))
        pa.publish(Heartbeat("x", 2, 0.0))
        got: list[Message] = []
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            got += sub.drain()
            time.sleep(0.01)
        assert sorted(type(m).__name__ for m in got) == ["Heartbeat", "ViewerCount"]
        assert sub.bad == 1
    finally:
        for s in (pa, pb, sub):
            s.close()
        ctx.term()
    assert not ipc_path(a).exists() and not ipc_path(b).exists()


def test_a_subscriber_that_falls_behind_counts_what_it_missed(tmp_path: Path) -> None:
    """PUB drops silently for a subscriber past its high-water mark: the publisher never
    waits, and the subscriber counts the gap in each publisher's sequence."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{tmp_path}/full.pub"
    pub = Publisher(ctx, endpoint, hwm=4)
    slow = Subscriber(ctx, [endpoint], (Heartbeat,), hwm=4)
    try:
        wait_joined(pub, slow, Heartbeat("t", 1, 0.0))
        # About 640 KiB of messages: more than the HWMs and the kernel's buffers hold.
        padding = "x" * 4096
        started = time.monotonic()
        for n in range(160):
            assert pub.publish(Heartbeat(padding, n, 0.0))
        assert time.monotonic() - started < 5  # never blocked
        got: list[Message] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            got += slow.drain()
            if got and got[-1].pid == 159:
                break
            pub.publish(Heartbeat(padding, 159, 0.0))  # in case the last one was dropped
            time.sleep(0.05)
        assert slow.missed > 0
        assert len({m.pid for m in got}) + slow.missed >= 160
        assert slow.bad == 0
    finally:
        pub.close()
        slow.close()
        ctx.term()


def test_async_iteration_from_an_asyncio_context(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/async.pub"

    async def main() -> list[Message]:
        ctx = zmq.asyncio.Context()
        pub = Publisher(ctx, endpoint)
        sub = Subscriber(ctx, [endpoint], (KeyframeRequest,))
        got: list[Message] = []

        async def read() -> None:
            async for msg in sub:
                got.append(msg)
                if len(got) == 3:
                    return

        reader = asyncio.ensure_future(read())
        try:
            for n in range(500):
                if reader.done():
                    break
                pub.publish(Heartbeat("t", n, 0.0))  # filtered out
                pub.publish(KeyframeRequest(f"cam{n}", "pli"))
                await asyncio.sleep(0.01)
            await asyncio.wait_for(reader, 5)
        finally:
            reader.cancel()
            pub.close()
            sub.close()
            ctx.term()
        return got

    got = asyncio.run(main())
    assert len(got) == 3 and all(isinstance(m, KeyframeRequest) for m in got)


def test_status_shows_what_each_service_lost_on_the_bus(stack: Stack) -> None:
    """Every service's heartbeat carries its subscribers' missed and bad counts."""

    def reported(doc: dict[str, Any]) -> bool:
        services = doc["services"]
        return all("bus" in s for s in services.values()) and len(services) >= 5

    stack.wait_for(reported, 15, "bus counts from every service")
    for name, svc in stack.status()["services"].items():
        assert set(svc["bus"]) == {"missed", "bad"}, name
        assert all(isinstance(v, int) and v >= 0 for v in svc["bus"].values()), (name, svc)
