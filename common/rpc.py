"""Request/reply over ZeroMQ: one envelope for every command socket in Titanium.

Request ``{id, cmd, args}`` → reply ``{id, ok: true, result}`` or
``{id, ok: false, error: {code, message}}``, msgpack-encoded, one frame each. A server is a
ROUTER, a client a DEALER, so many requests can be in flight and a slow one delays no
other. Malformed msgpack, unknown commands and wrong argument types get an error reply; the
server never stops serving because of a request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgpack
import zmq
import zmq.asyncio

log = logging.getLogger("titanium.rpc")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
# The largest request a server reads. The biggest real one is an SDP offer to the WebRTC
# service (a few KB; the front door takes 64 KB at most); without a bound, libzmq reads a
# frame of any size in full and msgpack unpacks it again. Past it libzmq drops the
# connection unread, which the client sees as 'disconnected'.
MAX_REQUEST = 1 << 20
# Requests being answered at once per server; past it a request gets 'busy' at once
# instead of one more task (a client that never reads its replies cannot pile them up).
MAX_PENDING = 256


class RpcError(Exception):
    """An error reply: ``code`` is a short machine-readable word, ``message`` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def reply_ok(req_id: Any, result: Any) -> bytes:
    return _pack({"id": req_id, "ok": True, "result": result})


def reply_error(req_id: Any, code: str, message: str) -> bytes:
    return _pack({"id": req_id, "ok": False, "error": {"code": code, "message": message}})


def parse_request(frame: bytes) -> tuple[Any, str, dict[str, Any]]:
    """(id, cmd, args) of a request frame, or RpcError('bad_request', why)."""
    try:
        req = msgpack.unpackb(frame, raw=False)
    except (ValueError, msgpack.UnpackException) as e:
        raise RpcError("bad_request", f"not msgpack: {e}") from None
    if not isinstance(req, dict):
        raise RpcError("bad_request", "a request is a map {id, cmd, args}")
    cmd, args = req.get("cmd"), req.get("args", {})
    if not isinstance(cmd, str):
        raise RpcError("bad_request", "'cmd' must be a string")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise RpcError("bad_request", "'args' must be a map")
    return req.get("id"), cmd, args


def arg(
    args: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...
) -> Any:
    """``args[name]`` checked against ``kind``; RpcError('bad_args') names what is wrong."""
    if name not in args or args[name] is None:
        if default is ...:
            raise RpcError("bad_args", f"missing argument {name!r}")
        return default
    value = args[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise RpcError("bad_args", f"argument {name!r} has the wrong type")
    if not isinstance(value, kind):
        raise RpcError("bad_args", f"argument {name!r} has the wrong type")
    return value


def server_socket(ctx: zmq.asyncio.Context) -> zmq.asyncio.Socket:
    """A ROUTER for :func:`serve`, bounded: options are set before bind, because libzmq
    gives each connection the options its socket had when it was bound."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST)
    return sock


async def serve(sock: zmq.asyncio.Socket, handlers: Mapping[str, Handler]) -> None:
    """Answer requests on a ROUTER socket until cancelled; each request runs as its own
    task, so one slow command (an ICE gathering) does not hold up the others."""
    pending: set[asyncio.Task[None]] = set()

    async def one(identity: bytes, frame: bytes) -> None:
        req_id: Any = None
        cmd = "?"
        try:
            req_id, cmd, args = parse_request(frame)
            handler = handlers.get(cmd)
            if handler is None:
                raise RpcError("unknown_command", f"no command {cmd!r}; known: {sorted(handlers)}")
            reply = reply_ok(req_id, await handler(args))
        except RpcError as e:
            reply = reply_error(req_id, e.code, e.message)
        except Exception as e:  # a bug, not the client's doing: one line, no Python text out
            log.error("command %r failed: %s: %s", cmd, type(e).__name__, e)
            reply = reply_error(req_id, "internal", "the command failed; the service log says why")
        await sock.send_multipart([identity, reply])

    try:
        while True:
            frames = await sock.recv_multipart()
            if len(frames) != 2:  # a DEALER sends [payload]; ROUTER prefixes the identity
                if frames:
                    await sock.send_multipart(
                        [frames[0], reply_error(None, "bad_request", "one frame per request")]
                    )
                continue
            if len(pending) >= MAX_PENDING:
                busy = f"{MAX_PENDING} requests already being answered; try again"
                await sock.send_multipart([frames[0], reply_error(None, "busy", busy)])
                continue
            task = asyncio.ensure_future(one(frames[0], frames[1]))
            pending.add(task)
            task.add_done_callback(pending.discard)
    finally:
        for task in pending:
            task.cancel()


class RpcClient:
    """A DEALER client: ``await call(cmd, **args)`` returns the result or raises RpcError
    (code 'timeout' when the server does not answer in time, 'disconnected' when the
    server went away with the request unanswered: a restarted server never answers it, so
    the caller can resend at once instead of waiting out its timeout)."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str) -> None:
        self._sock = ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._monitor = self._sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._monitor.setsockopt(zmq.LINGER, 0)
        self._watcher: asyncio.Task[None] | None = None

    async def call(self, cmd: str, timeout: float = 10.0, **args: Any) -> Any:
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())
            self._watcher = asyncio.ensure_future(self._watch())
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = fut
        try:
            await self._sock.send(_pack({"id": req_id, "cmd": cmd, "args": args}))
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RpcError("timeout", f"no reply to {cmd!r} within {timeout:g} s") from None
        finally:
            self._waiting.pop(req_id, None)

    async def _read(self) -> None:
        while True:
            frame = await self._sock.recv()
            try:
                rep = msgpack.unpackb(frame, raw=False)
                fut = self._waiting.get(rep["id"])
            except (ValueError, KeyError, TypeError, msgpack.UnpackException):
                log.warning("dropped a malformed reply")
                continue
            if fut is None or fut.done():
                continue
            if rep.get("ok"):
                fut.set_result(rep.get("result"))
            else:
                err = rep.get("error") or {}
                fut.set_exception(RpcError(str(err.get("code")), str(err.get("message"))))

    async def _watch(self) -> None:
        """Fail what the server took with it: after a disconnection no reply comes."""
        while True:
            await self._monitor.recv_multipart()  # only EVENT_DISCONNECTED is subscribed
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(
                        RpcError("disconnected", "the service went away before answering")
                    )

    def close(self) -> None:
        for task in (self._reader, self._watcher):
            if task is not None:
                task.cancel()
        self._sock.disable_monitor()
        self._monitor.close()
        self._sock.close()
