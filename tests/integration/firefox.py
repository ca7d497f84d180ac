"""A small headless-Firefox driver for tests: Debian's ``firefox-esr`` spoken to directly over
WebDriver BiDi (its built-in Remote Agent, one WebSocket, aiohttp), no geckodriver.

Like browser.py for Chromium: the protocol runs on an event loop in a background thread, the
test-facing API is synchronous and time-limited, values cross as JSON, and Firefox is always
stopped by its PID. The profile lives in a temporary directory with what keeps Firefox off
the network (no updates, telemetry, safe browsing or plugin downloads: the OpenH264 plugin
Firefox fetches from the network for WebRTC H.264 is therefore never there).

    with Firefox.launch() as firefox:
        page = firefox.open("http://127.0.0.1:8080/")
        assert page.eval("document.title") == "Titanium"
"""

from __future__ import annotations

import asyncio
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
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import aiohttp

EXECUTABLES = ("firefox-esr", "firefox")
LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")
PREFS = {
    "app.update.enabled": False,
    "app.update.auto": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "extensions.update.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "media.autoplay.default": 0,
    # A peer on 127.0.0.1 is reachable only with loopback candidates, unobfuscated.
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
}


class FirefoxError(AssertionError):
    """A call failed or timed out; the message carries what the page logged."""


def find_firefox() -> str | None:
    for name in EXECUTABLES:
        path = shutil.which(name)
        if path:
            return path
    return None


class FirefoxPage:
    def __init__(self, firefox: Firefox, context: str) -> None:
        self.firefox = firefox
        self.context = context

    def eval(self, js: str, timeout: float = 10) -> Any:
        """The JSON value of the expression ``js`` (promises awaited)."""
        expression = f"(async () => JSON.stringify(await ({js})))()"
        result = self.firefox.call(
            "script.evaluate",
            {
                "expression": expression,
                "target": {"context": self.context},
                "awaitPromise": True,
                "resultOwnership": "none",
            },
            timeout,
        )
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise FirefoxError(f"{js}: {details.get('text')}\n{self.firefox.diagnostics()}")
        value = result.get("result", {}).get("value")
        return None if value is None else json.loads(value)

    def wait_for(self, js: str, timeout: float) -> Any:
        """Poll ``js`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.eval(js, max(1.0, deadline - time.monotonic()))
            if value:
                return value
            time.sleep(0.2)
        raise FirefoxError(
            f"not true within {timeout} s: {js} (last {value!r})\n{self.firefox.diagnostics()}"
        )


class Firefox:
    def __init__(
        self, proc: subprocess.Popen[str], profile: tempfile.TemporaryDirectory[str]
    ) -> None:
        self.proc = proc
        self.profile = profile
        self.console: deque[str] = deque(maxlen=200)
        self.stderr: deque[str] = deque(maxlen=60)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._http: aiohttp.ClientSession | None = None
        self._reader: asyncio.Future[None] | None = None

    @classmethod
    def launch(cls, timeout: float = 30) -> Firefox:
        binary = find_firefox()
        if binary is None:
            raise FirefoxError("firefox-esr is not installed")
        profile = tempfile.TemporaryDirectory(prefix="titanium-firefox-")
        user_js = "".join(
            f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items()
        )
        Path(profile.name, "user.js").write_text(user_js)
        env = {**os.environ, "HOME": profile.name, "MOZ_CRASHREPORTER_DISABLE": "1"}
        argv = [
            binary,
            "--headless",
            "--no-remote",
            "--profile",
            profile.name,
            "--remote-debugging-port=0",
            "about:blank",
        ]
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        firefox = cls(proc, profile)
        try:
            url = firefox._await_listening(timeout)
            firefox._run(firefox._connect(url), timeout)
            firefox.call("session.new", {"capabilities": {}}, timeout)
            firefox.call("session.subscribe", {"events": ["log.entryAdded"]}, timeout)
        except BaseException:
            firefox.close()
            raise
        return firefox

    def _await_listening(self, timeout: float) -> str:
        assert self.proc.stderr is not None
        found: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr.append(line.rstrip())
                m = LISTENING.search(line)
                if m and not found:
                    found.append(m[1])
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or not found:
            raise FirefoxError(f"Firefox did not open its Remote Agent: {list(self.stderr)}")
        return found[0]

    async def _connect(self, url: str) -> None:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(f"{url}/session", max_msg_size=0)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            msg = json.loads(frame.data)
            if msg.get("type") == "event" and msg.get("method") == "log.entryAdded":
                p = msg.get("params", {})
                self.console.append(f"{p.get('level')}: {p.get('text')}")
                continue
            future = self._pending.pop(msg.get("id", -1), None)
            if future is None or future.done():
                continue
            if msg.get("type") == "error":
                future.set_exception(FirefoxError(f"{msg.get('error')}: {msg.get('message')}"))
            else:
                future.set_result(msg.get("result", {}))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(FirefoxError("the BiDi connection closed"))

    async def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self._ws is not None
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._pending[msg_id] = future
        await self._ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        return await future

    def _run(self, coro: Any, timeout: float) -> Any:
        try:
            return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)
        except FutureTimeout:
            raise FirefoxError(f"timed out after {timeout} s\n{self.diagnostics()}") from None

    def call(self, method: str, params: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        result: dict[str, Any] = self._run(self._send(method, params), timeout)
        return result

    def open(self, url: str, timeout: float = 20) -> FirefoxPage:
        tree = self.call("browsingContext.getTree", {}, timeout)
        context = tree["contexts"][0]["context"]
        self.call(
            "browsingContext.navigate",
            {"context": context, "url": url, "wait": "complete"},
            timeout,
        )
        return FirefoxPage(self, context)

    def diagnostics(self) -> str:
        return "console:\n" + "\n".join(self.console) + "\nstderr:\n" + "\n".join(self.stderr)

    def close(self) -> None:
        async def shut() -> None:
            if self._ws is not None:
                await self._ws.close()
            if self._http is not None:
                await self._http.close()

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        except Exception:  # already gone: the process is ended below either way
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its content processes too
                self.proc.wait(5)
        self.profile.cleanup()

    def __enter__(self) -> Firefox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
