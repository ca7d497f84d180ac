"""A small headless-Chromium driver for tests: Debian's ``chromium`` spoken to directly over
the Chrome DevTools Protocol (one WebSocket, aiohttp), no Playwright, Puppeteer or npm.

The protocol runs on an event loop in a background thread, so console messages and
exceptions are collected while the test thread sleeps; the test-facing API is synchronous
and every call is time-limited. Failures carry the page's console and Chromium's last
stderr lines. Chromium is always stopped by its PID (terminate → wait → kill), even when a
test fails.

    with Browser.launch() as browser:
        page = browser.open("http://127.0.0.1:8080/")
        assert page.eval("document.title") == "Titanium"
        page.screenshot(tmp_path / "page.png")

``Browser.launch(netns="ti-v-123")`` runs Chromium inside that network namespace (``ip netns
exec``), and the DevTools connection is opened from inside it too, since Chromium's DevTools
port is on the namespace's own 127.0.0.1 (tests/integration/nat.py uses this for the remote
viewer). Without ``netns`` nothing changes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from tests.integration import netns as _netns

T = TypeVar("T")

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome")
DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")
STDERR_LINES = 60
# Chromium's complaints about the missing D-Bus in containers crowd out the useful lines.
STDERR_NOISE = re.compile(r"dbus/|Failed to connect to the bus|unexpected operator")
CONSOLE_LINES = 200

# What the WebRTC tests need, and nothing that talks to the network on its own.
FLAGS = [
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
    # Without it Chromium gathers no 127.0.0.1 candidate, and a peer on the same
    # machine is unreachable.
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    # A page opened by CDP is a background tab to the scheduler; these keep its timers,
    # requestAnimationFrame and media running at full rate.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--window-size=1280,900",
    "--remote-debugging-port=0",
]


class BrowserError(AssertionError):
    """A browser call failed or timed out; the message carries what the page logged."""


def find_chromium() -> str | None:
    """The path of an installed Chromium, or None."""
    for name in EXECUTABLES:
        path = shutil.which(name)
        if path:
            return path
    return None


class _Connection:
    """One DevTools WebSocket: commands matched to replies by id, events to listeners by
    session id (flat sessions: every page's traffic shares this socket)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.listeners: dict[str, Callable[[str, dict[str, Any]], None]] = {}
        self.closed_reason = ""
        self._reader = asyncio.ensure_future(self._read())

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            if self.closed_reason:
                raise BrowserError(f"{method}: DevTools connection closed: {self.closed_reason}")
            await self.ws.send_str(json.dumps(msg))
            return await future
        finally:
            self._pending.pop(msg_id, None)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                msg = json.loads(frame.data)
                if "id" in msg:
                    future = self._pending.get(msg["id"])
                    if future is None or future.done():
                        continue
                    if "error" in msg:
                        future.set_exception(BrowserError(f"DevTools error: {msg['error']}"))
                    else:
                        future.set_result(msg.get("result", {}))
                else:
                    listener = self.listeners.get(msg.get("sessionId", ""))
                    if listener is not None:
                        listener(msg["method"], msg.get("params", {}))
            self.closed_reason = "the browser closed the socket"
        except Exception as e:  # the socket died: every waiter must hear about it
            self.closed_reason = repr(e)
        lost = f"DevTools connection lost: {self.closed_reason}"
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrowserError(lost))

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def _remote_object_text(obj: dict[str, Any]) -> str:
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return str(obj.get("description") or obj.get("unserializableValue") or obj.get("type"))


def _exception_text(details: dict[str, Any]) -> str:
    exc = details.get("exception") or {}
    text = exc.get("description") or details.get("text", "exception")
    where = f" (line {details.get('lineNumber', '?')}:{details.get('columnNumber', '?')})"
    return f"{text}{where}"


class Page:
    """One tab. Keeps the last console messages, page exceptions and log entries."""

    def __init__(self, browser: Browser, target_id: str, session: str) -> None:
        self.browser = browser
        self.target_id = target_id
        self.session = session
        self.console: deque[str] = deque(maxlen=CONSOLE_LINES)
        self.exceptions: list[str] = []
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            args = " ".join(_remote_object_text(a) for a in params.get("args", []))
            self.console.append(f"console.{params.get('type', 'log')}: {args}")
        elif method == "Runtime.exceptionThrown":
            text = _exception_text(params.get("exceptionDetails", {}))
            self.exceptions.append(text)
            self.console.append(f"uncaught: {text}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            url = f" {entry['url']}" if entry.get("url") else ""
            self.console.append(
                f"{entry.get('source', 'log')}.{entry.get('level', '')}: {entry.get('text')}{url}"
            )
        for future in self._waiters.pop(method, []):
            if not future.done():
                future.set_result(params)

    def _wait_event(self, method: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(method, []).append(future)
        return future

    async def _send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser._cdp().send(method, params, self.session)

    def navigate(self, url: str, timeout: float = 15) -> None:
        """Load ``url`` and wait for its load event."""

        async def go() -> None:
            loaded = self._wait_event("Page.loadEventFired")
            result = await self._send("Page.navigate", {"url": url})
            if result.get("errorText"):
                raise BrowserError(f"navigating to {url}: {result['errorText']}")
            await loaded

        self.browser._run(go(), timeout, f"loading {url}", self)

    def eval(self, js: str, timeout: float = 10) -> Any:
        """The value of the JavaScript expression ``js``, awaited if it is a promise and
        returned as JSON. A thrown exception or a timeout raises :class:`BrowserError`."""

        async def evaluate() -> Any:
            reply = await self._send(
                "Runtime.evaluate",
                {
                    "expression": js,
                    "awaitPromise": True,
                    "returnByValue": True,
                    "userGesture": True,
                },
            )
            if "exceptionDetails" in reply:
                raise BrowserError(
                    f"JavaScript threw {_exception_text(reply['exceptionDetails'])}\n"
                    f"in: {_shorten(js)}\n{self.diagnostics()}"
                )
            return reply["result"].get("value")

        return self.browser._run(evaluate(), timeout, f"evaluating {_shorten(js)}", self)

    def wait_for(self, js: str, timeout: float = 10, interval: float = 0.2) -> Any:
        """Evaluate ``js`` until it gives a truthy value, and return that value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            value = self.eval(js, timeout=max(1.0, deadline - time.monotonic()))
            if value:
                return value
            time.sleep(interval)
        raise BrowserError(
            f"not true after {timeout} s (last value {value!r}): {_shorten(js)}\n"
            + self.diagnostics()
        )

    def screenshot(self, path: str | os.PathLike[str], timeout: float = 10) -> Path:
        """Save a PNG of the visible page to ``path``, for looking at a failure."""

        async def capture() -> bytes:
            reply = await self._send("Page.captureScreenshot", {"format": "png"})
            return base64.b64decode(reply["data"])

        out = Path(path)
        out.write_bytes(self.browser._run(capture(), timeout, "taking a screenshot", self))
        return out

    def diagnostics(self) -> str:
        """The page's console and Chromium's stderr tail, for assertion messages."""
        console = "\n".join(self.console) or "(nothing)"
        return f"-- page console:\n{console}\n{self.browser.stderr_tail()}"

    def close(self, timeout: float = 5) -> None:
        self.browser._run(
            self.browser._cdp().send("Target.closeTarget", {"targetId": self.target_id}),
            timeout,
            "closing the page",
        )


def _shorten(js: str, limit: int = 160) -> str:
    js = " ".join(js.split())
    return js if len(js) <= limit else js[: limit - 1] + "…"


class Browser:
    """A headless Chromium process and its DevTools connection."""

    def __init__(
        self, executable: str, extra_args: list[str] | None = None, netns: str | None = None
    ) -> None:
        self.executable = executable
        self.netns = netns
        self.args = list(FLAGS) + list(extra_args or [])
        if os.geteuid() == 0:
            self.args.append("--no-sandbox")  # Chromium refuses to run as root otherwise
        self.user_data_dir = Path(tempfile.mkdtemp(prefix="titanium-chromium-"))
        self.args.append(f"--user-data-dir={self.user_data_dir}")
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self.pages: list[Page] = []
        self._ws_url: str | None = None
        self._ws_found = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, daemon=True)
        self._session: aiohttp.ClientSession | None = None
        self._conn: _Connection | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def launch(
        cls,
        executable: str | None = None,
        extra_args: list[str] | None = None,
        timeout: float = 30,
        netns: str | None = None,
    ) -> Browser:
        """Start Chromium (inside network namespace ``netns`` when given) and connect to it;
        raises BrowserError (after cleaning up) when it does not come up within ``timeout``
        seconds."""
        path = executable or find_chromium()
        if path is None:
            raise BrowserError("chromium is not installed (apt-get install chromium)")
        browser = cls(path, extra_args, netns)
        try:
            browser._start(timeout)
        except BaseException:
            browser.close()
            raise
        return browser

    def _run_loop(self) -> None:
        # Every socket of the DevTools client is made on this thread, so entering the
        # namespace here puts the client next to Chromium's namespaced 127.0.0.1.
        if self.netns is not None:
            _netns.enter(self.netns)
        self._loop.run_forever()

    def _start(self, timeout: float) -> None:
        self._thread.start()
        # `ip netns exec` execs Chromium in place: the PID stays Chromium's.
        wrapper = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(
            [*wrapper, self.executable, *self.args, "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Its own process group, so its helpers (zygote, renderers) can be found and
            # stopped with it, and a Ctrl-C in pytest does not reach it first.
            start_new_session=True,
        )
        threading.Thread(target=self._read_stderr, daemon=True).start()
        deadline = time.monotonic() + timeout
        port_file = self.user_data_dir / "DevToolsActivePort"
        while self._ws_url is None:
            if self.proc.poll() is not None:
                raise BrowserError(
                    f"chromium exited with {self.proc.returncode} at start\n" + self.stderr_tail()
                )
            if time.monotonic() > deadline:
                raise BrowserError(f"chromium did not open DevTools in {timeout} s\n")
            # The stderr line usually comes first; the port file is the fallback when a
            # wrapper script swallows stderr.
            with contextlib.suppress(OSError, ValueError):
                port, path = port_file.read_text().split("\n")[:2]
                if port and path:
                    self._ws_url = f"ws://127.0.0.1:{int(port)}{path}"
            self._ws_found.wait(0.1)
        self._run(self._connect(self._ws_url), max(1.0, deadline - time.monotonic()), "connecting")

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line and not STDERR_NOISE.search(line):
                self.stderr.append(line)
            m = DEVTOOLS_LINE.search(line)
            if m and self._ws_url is None:
                self._ws_url = m.group(1)
                self._ws_found.set()

    async def _connect(self, url: str) -> None:
        # No size limit: screenshots arrive as one base64 message of several MB.
        self._session = aiohttp.ClientSession()
        ws = await self._session.ws_connect(url, max_msg_size=0)
        self._conn = _Connection(ws)

    def _cdp(self) -> _Connection:
        if self._conn is None:
            raise BrowserError("the browser is not connected")
        return self._conn

    def _run(
        self,
        coro: Coroutine[Any, Any, T],
        timeout: float,
        what: str,
        page: Page | None = None,
    ) -> T:
        """Run ``coro`` on the protocol loop, limited to ``timeout`` seconds."""
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self._loop)
        try:
            return future.result(timeout + 2)
        except TimeoutError:
            future.cancel()
            context = page.diagnostics() if page else self.stderr_tail()
            raise BrowserError(f"timed out after {timeout} s {what}\n{context}") from None

    def open(self, url: str, timeout: float = 15) -> Page:
        """A new tab with ``url`` loaded."""

        async def create() -> Page:
            conn = self._cdp()
            target = await conn.send("Target.createTarget", {"url": "about:blank"})
            attached = await conn.send(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )
            page = Page(self, target["targetId"], attached["sessionId"])
            conn.listeners[page.session] = page._on_event
            for domain in ("Runtime", "Page", "Log"):
                await conn.send(f"{domain}.enable", {}, page.session)
            return page

        page = self._run(create(), timeout, "opening a page")
        self.pages.append(page)
        page.navigate(url, timeout)
        return page

    def stderr_tail(self) -> str:
        lines = "\n".join(self.stderr) or "(nothing)"
        return f"-- chromium stderr (last {STDERR_LINES} lines):\n{lines}"

    def close(self) -> None:
        """Stop Chromium (terminate → wait → kill, by PID) and remove its profile."""
        if self._thread.is_alive():

            async def disconnect() -> None:
                if self._conn is not None:
                    await self._conn.close()
                if self._session is not None:
                    await self._session.close()

            with contextlib.suppress(Exception):
                self._run(disconnect(), 3, "disconnecting")
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc is not None:
            # Helpers that outlived the browser are in the group it led (start_new_session):
            # only processes this Chromium started.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()
        shutil.rmtree(self.user_data_dir, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
