"""The request/reply envelope over real ipc sockets: results, error replies for every kind
of bad request, and a server that keeps answering."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
import zmq.asyncio

from titanium.common.rpc import MAX_PENDING, RpcClient, RpcError, arg, serve, server_socket


async def _echo(args: dict[str, Any]) -> Any:
    return {"n": arg(args, "n", int) * 2}


async def _slow(args: dict[str, Any]) -> Any:
    await asyncio.sleep(0.5)
    return "slow"


def test_replies_errors_and_resilience(tmp_path: Path) -> None:
    async def main() -> None:
        ctx = zmq.asyncio.Context()
        endpoint = f"ipc://{tmp_path}/t.rpc"
        router = ctx.socket(zmq.ROUTER)
        router.bind(endpoint)
        server = asyncio.ensure_future(serve(router, {"echo": _echo, "slow": _slow}))
        client = RpcClient(ctx, endpoint)
        raw = ctx.socket(zmq.DEALER)
        raw.connect(endpoint)
        try:
            assert await client.call("echo", n=21) == {"n": 42}
            with pytest.raises(RpcError) as e:
                await client.call("nope")
            assert e.value.code == "unknown_command"
            with pytest.raises(RpcError) as e:
                await client.call("echo", n="x")
            assert e.value.code == "bad_args" and "'n'" in e.value.message
            # Garbage and well-formed-but-wrong requests from a raw socket.
            for junk in [
                b"\xc1\xc1",
                msgpack.packb([1]),
                msgpack.packb({"cmd": 5}),
                msgpack.packb({"id": 1, "cmd": "echo", "args": [1]}),
            ]:
                await raw.send(junk)
                rep = msgpack.unpackb(await asyncio.wait_for(raw.recv(), 5))
                assert rep["ok"] is False and rep["error"]["code"] == "bad_request"
            # A slow command does not hold up a quick one.
            slow = asyncio.ensure_future(client.call("slow"))
            assert await asyncio.wait_for(client.call("echo", n=1), 0.3) == {"n": 2}
            assert await slow == "slow"
            with pytest.raises(RpcError) as e:
                await client.call("slow", timeout=0.1)
            assert e.value.code == "timeout"
        finally:
            client.close()
            raw.close(0)
            server.cancel()
            router.close(0)
            ctx.term()

    asyncio.run(main())


def test_past_max_pending_a_request_is_answered_busy_and_the_rest_are_served(
    tmp_path: Path,
) -> None:
    """Pins: each request became a task with no bound, so a client sending faster than a
    slow command answers grew the server's tasks (and their requests) without limit."""

    async def main() -> None:
        ctx = zmq.asyncio.Context()
        endpoint = f"ipc://{tmp_path}/t.rpc"
        router = server_socket(ctx)
        router.bind(endpoint)
        release = asyncio.Event()

        async def hold(args: dict[str, Any]) -> Any:
            await release.wait()
            return "held"

        server = asyncio.ensure_future(serve(router, {"hold": hold, "echo": _echo}))
        raw = ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(endpoint)
        try:
            extra = 5
            for i in range(MAX_PENDING + extra):
                await raw.send(msgpack.packb({"id": i, "cmd": "hold"}))
            busy = [msgpack.unpackb(await asyncio.wait_for(raw.recv(), 5)) for _ in range(extra)]
            assert all(r["error"]["code"] == "busy" for r in busy), busy
            release.set()
            held = [
                msgpack.unpackb(await asyncio.wait_for(raw.recv(), 5)) for _ in range(MAX_PENDING)
            ]
            assert sorted(r["id"] for r in held) == list(range(MAX_PENDING))
            await raw.send(msgpack.packb({"id": "e", "cmd": "echo", "args": {"n": 2}}))
            assert msgpack.unpackb(await asyncio.wait_for(raw.recv(), 5))["result"] == {"n": 4}
        finally:
            raw.close(0)
            server.cancel()
            router.close(0)
            ctx.term()

    asyncio.run(main())
