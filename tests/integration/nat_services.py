"""What the NAT harness (tests/integration/nat.py) runs inside its namespaces: Debian's coturn
on the internet's public TURN address, and aiohttp apps served from a namespaced thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from tests.integration import netns
from tests.integration.stun import wait_for_binding
from tests.stack import terminate
from titanium.mirage.turn import ice_servers

if TYPE_CHECKING:
    from tests.integration.nat import Nat

T = TypeVar("T")
TURN_PORT = 3478
REALM = "nat.test"


class Coturn:
    """turnserver in the internet namespace on ``turn_ip:3478``, UDP and TCP, REST-API shared
    secret (``use-auth-secret``), relay addresses on the same public ``turn_ip``; no config
    file (``-n``), no TLS, no CLI. Its log is kept in ``tmp`` for failure messages."""

    def __init__(self, nat: Nat, tmp: Path, secret: str) -> None:
        self.ip, self.port, self.secret = nat.turn_ip, TURN_PORT, secret
        self.log = tmp / "turnserver.log"
        self.proc = nat.popen(
            nat.internet,
            [
                "turnserver",
                "-n",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                f"--listening-ip={self.ip}",
                f"--relay-ip={self.ip}",
                f"--listening-port={self.port}",
                "--use-auth-secret",
                f"--static-auth-secret={secret}",
                f"--realm={REALM}",
                "--no-multicast-peers",
                f"--userdb={tmp / 'turndb'}",
                f"--pidfile={tmp / 'turnserver.pid'}",
                f"--log-file={self.log}",
                "--simple-log",
                "--no-stdout-log",
            ],
        )
        try:
            with netns.inside(nat.internet):
                wait_for_binding(self.ip, self.port, self._gone)
        except AssertionError as e:
            self.close()
            raise AssertionError(f"{e}:\n{self.tail()}") from None

    def _gone(self) -> str | None:
        return None if self.proc.poll() is None else f"turnserver exited {self.proc.returncode}"

    def url(self, transport: str) -> str:
        return f"turn:{self.ip}:{self.port}?transport={transport}"

    def ice_servers(
        self, name: str, transports: tuple[str, ...] = ("udp", "tcp"), ttl: int = 600
    ) -> list[dict[str, Any]]:
        """Credentials minted the way the proxy mints them (titanium.mirage.turn), in the
        RTCIceServer shape a browser page or aiortc takes."""
        return ice_servers(self.secret, [self.url(t) for t in transports], name, ttl=ttl)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no coturn log)"

    def close(self) -> None:
        terminate(self.proc, 5)


class NetnsHttp:
    """An aiohttp ``app`` on ``host:port`` inside namespace ``ns``, served by a thread of its
    own that lives in that namespace."""

    def __init__(self, ns: str, host: str, port: int, app: web.Application) -> None:
        self.ns, self.host, self.port = ns, host, port
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app)
        self._started = threading.Event()
        self._error: BaseException | None = None
        threading.Thread(target=self._serve, daemon=True).start()
        if not self._started.wait(10):
            raise AssertionError(f"the HTTP server in {ns} did not start in 10 s")
        if self._error is not None:
            raise AssertionError(f"the HTTP server in {ns} failed: {self._error!r}")

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _serve(self) -> None:
        try:
            netns.enter(self.ns)
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            self._loop.run_until_complete(site.start())
        except BaseException as e:  # reported to the constructor, which raises it
            self._error = e
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()

    def close(self) -> None:
        if self._error is not None or not self._loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


class NetnsLoop:
    """An asyncio loop on a thread that lives in namespace ``ns``: what an in-process aiortc
    peer needs to gather that namespace's addresses and send from it (aioice lists
    interfaces and opens its sockets on the loop's thread)."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise AssertionError(f"cannot enter {ns}: {self._error!r}")

    def _serve(self) -> None:
        try:
            netns.enter(self.ns)
        except BaseException as e:  # reported to the constructor, which raises it
            self._error = e
            self._ready.set()
            return
        asyncio.set_event_loop(self._loop)
        self._ready.set()
        self._loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """``coro``'s result, run on the namespaced loop, limited to ``timeout`` seconds."""
        return self.submit(coro, timeout).result(timeout + 2)

    def submit(self, coro: Coroutine[Any, Any, T], timeout: float) -> concurrent.futures.Future[T]:
        """``coro`` started on the namespaced loop, limited to ``timeout`` seconds; the
        caller's thread is free meanwhile (to poll a stack in the root namespace)."""
        return asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self._loop)

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()
