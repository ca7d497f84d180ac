"""The dial-out link against a proxy address that takes TCP connections and then says
nothing (an overloaded proxy, a port that is not a proxy): real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import zmq.asyncio

from titanium.common.config import parse_config
from titanium.common.rpc import RpcClient
from titanium.services.mirage.link import Link


class SilentListener:
    """Accepts connections, keeps them open, never writes; counts them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_a_silent_proxy_is_given_up_on_and_redialled(tmp_path: Path) -> None:
    """Pins: the dial, up to the welcome, is bounded: a proxy that accepts the TCP connection
    and never answers the WebSocket handshake is abandoned and re-dialled with backoff.
    Before: ws_connect had no bound (only sock_connect), so one such dial held the link
    forever."""
    silent = SilentListener()
    config = parse_config(
        {
            "mirage": {
                "titanium_streams": {"enabled": True},
                "proxy": f"ws://127.0.0.1:{silent.port}",
                "device": {"id": "dev_silent", "secret": "s"},
            }
        },
        find_camera=lambda: None,
    )

    async def run() -> Link:
        ctx = zmq.asyncio.Context()
        rpc = RpcClient(ctx, f"ipc://{tmp_path / 'webrtc.rpc'}")  # never called: no offers
        link = Link(config, rpc, connect_timeout=0.5)
        task = asyncio.ensure_future(link.run())
        try:
            for _ in range(80):
                if link.attempts >= 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            rpc.close()
            ctx.term()
        return link

    try:
        link = asyncio.run(run())
    finally:
        silent.close()
    assert link.attempts >= 2 and len(silent.accepted) >= 2, (link.attempts, link.last_error)
    assert link.last_error == "no WebSocket handshake within 0.5 s"
    assert "not connected to ws://127.0.0.1:" in link.describe()
