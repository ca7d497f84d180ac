"""The Mirage proxy's devices as a printer and an admin meet them: a real ``titaniumctl
mirage serve`` process on 127.0.0.1, its registry in a temporary state directory, devices
added and removed with the real CLI, and a real aiohttp WebSocket client dialling in as the
printer does (mirage/server.py's protocol)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import TITANIUMCTL, free_port


@dataclass
class Proxy:
    config: Path
    url: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen[str]

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return mirage_ctl(self.config, *args)

    def add(self, name: str = "bed printer") -> tuple[str, str]:
        out = self.ctl("add-device", name)
        assert out.returncode == 0, out.stderr
        fields = dict(
            line.split(":", 1) for line in out.stdout.splitlines() if line.startswith(("id", "se"))
        )
        return fields["id"].strip(), fields["secret"].strip()

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/health", timeout=5) as res:
            doc: dict[str, Any] = json.load(res)
        return doc


def mirage_ctl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TITANIUMCTL, "mirage", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def write_config(tmp: Path, doc: dict[str, Any]) -> Path:
    path = tmp / "proxy.json"
    path.write_text(json.dumps(doc))
    return path


@contextmanager
def serve(tmp_path: Path, **extra: Any) -> Iterator[Proxy]:
    """A real ``titaniumctl mirage serve`` on 127.0.0.1 with ``extra`` in its config,
    answering /health; stopped (and its output checked for tracebacks) at the end."""
    port = free_port()
    doc = {"listen": f"127.0.0.1:{port}", "state_dir": str(tmp_path / "state"), **extra}
    config = write_config(tmp_path, doc)
    proc = subprocess.Popen(
        [TITANIUMCTL, "mirage", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    p = Proxy(config, f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                p.health()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "the proxy did not answer /health in 20 s"
                time.sleep(0.1)
        yield p
    finally:
        proc.terminate()
        try:
            out = proc.communicate(timeout=10)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
    assert "Traceback" not in out, out


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    with serve(tmp_path) as p:
        yield p


async def dial(proxy: Proxy, hello: dict[str, Any]) -> tuple[aiohttp.ClientSession, Any]:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(proxy.url.replace("http", "ws") + "/device")
    await ws.send_json(hello)
    return session, ws


async def refused(proxy: Proxy, hello: dict[str, Any]) -> tuple[int | None, str]:
    session, ws = await dial(proxy, hello)
    try:
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE, msg
        return ws.close_code, str(msg.extra)
    finally:
        await ws.close()
        await session.close()


def test_good_device_welcomed_and_in_health(proxy: Proxy) -> None:
    """Pins: a registered device saying hello with its id and secret is welcomed and counted
    online in /health, and is no longer once it hangs up."""
    device_id, secret = proxy.add()

    async def run() -> None:
        session, ws = await dial(proxy, {"type": "hello", "device": device_id, "secret": secret})
        try:
            assert await ws.receive_json(timeout=10) == {"type": "welcome"}
            doc = await (await session.get(proxy.url + "/health")).json()
            assert doc["devices_online"] == 1 and doc["devices"] == [device_id]
        finally:
            await ws.close()
            await session.close()

    asyncio.run(run())
    deadline = time.monotonic() + 5
    while proxy.health()["devices_online"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proxy.health()["devices_online"] == 0


def test_plain_ws_said_at_start_and_sigterm_stops(proxy: Proxy) -> None:
    """Pins: without `tls` the proxy says at start that it serves plain ws://, and SIGTERM
    stops it cleanly (exit 0)."""
    proxy.proc.terminate()
    out, _ = proxy.proc.communicate(timeout=10)
    assert proxy.proc.returncode == 0, out
    assert "listening on ws://127.0.0.1:" in out and "serving plain ws://" in out, out


def test_wrong_secret_and_unknown_id_refused_4401(proxy: Proxy) -> None:
    """Pins: a wrong secret and an id never registered are both closed with 4401 and the same
    reason (which of the two is not told), and neither shows online."""
    device_id, secret = proxy.add()
    wrong = "x" + secret[1:]

    async def run() -> None:
        bad = await refused(proxy, {"type": "hello", "device": device_id, "secret": wrong})
        unknown = await refused(
            proxy, {"type": "hello", "device": "dev_0000000000000000", "secret": secret}
        )
        assert bad == (4401, "bad device credentials")
        assert unknown == (4401, "bad device credentials")
        not_hello = await refused(proxy, {"type": "offer", "sdp": "v=0"})
        assert not_hello[0] == 4400

    asyncio.run(run())
    assert proxy.health()["devices_online"] == 0


def test_cli_add_list_remove(proxy: Proxy) -> None:
    """Pins: add-device prints an id and a secret with the warning that it is shown once,
    list-devices shows the device without its secret, remove-device forgets it, and an
    unknown id exits 2 with the reason."""
    out = proxy.ctl("add-device", "voron")
    assert out.returncode == 0, out.stderr
    assert "cannot be shown again" in out.stdout
    device_id = out.stdout.split()[1]
    secret = out.stdout.splitlines()[1].split()[1]
    listed = proxy.ctl("list-devices")
    assert listed.returncode == 0 and device_id in listed.stdout and "voron" in listed.stdout
    assert secret not in listed.stdout
    assert json.loads(proxy.ctl("list-devices", "--json").stdout)[0]["id"] == device_id
    assert proxy.ctl("remove-device", device_id).returncode == 0
    assert "no devices registered" in proxy.ctl("list-devices").stdout
    again = proxy.ctl("remove-device", device_id)
    assert again.returncode == 2 and f"no device with id {device_id!r}" in again.stderr


def test_removed_device_cut_off_within_2s(proxy: Proxy) -> None:
    """Pins: removing a device while it is connected closes its WebSocket with 4403 "device
    removed" within 2 s, and it cannot come back with the old secret."""
    device_id, secret = proxy.add()
    hello = {"type": "hello", "device": device_id, "secret": secret}

    async def run() -> None:
        session, ws = await dial(proxy, hello)
        try:
            assert await ws.receive_json(timeout=10) == {"type": "welcome"}
            out = await asyncio.to_thread(proxy.ctl, "remove-device", device_id)
            assert out.returncode == 0, out.stderr
            removed_at = time.monotonic()
            msg = await ws.receive(timeout=10)
            elapsed = time.monotonic() - removed_at
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            assert (ws.close_code, msg.extra) == (4403, "device removed")
            assert elapsed < 2.0, f"cut off after {elapsed:.2f} s"
        finally:
            await ws.close()
            await session.close()
        assert await refused(proxy, hello) == (4401, "bad device credentials")

    asyncio.run(run())


def test_oversized_message_closes_connection(proxy: Proxy) -> None:
    """Pins: messages are bounded at 64 KiB; a larger one ends the connection (1009)."""
    device_id, secret = proxy.add()

    async def run() -> None:
        session, ws = await dial(proxy, {"type": "hello", "device": device_id, "secret": secret})
        try:
            assert await ws.receive_json(timeout=10) == {"type": "welcome"}
            await ws.send_str("x" * (65 * 1024))
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1009
        finally:
            await ws.close()
            await session.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"listen": "127.0.0.1:99999", "state_dir": "/tmp/x"}, "listen"),
        ({"listen": "127.0.0.1:8443"}, "state_dir"),
        ({"state_dir": "/tmp/x", "tsl": {}}, "tsl"),
        ({"state_dir": "/tmp/x", "tls": {"cert": "/nonexistent.pem", "key": ""}}, "tls.cert"),
        (
            {"state_dir": "/tmp/x", "turn": {"secret": "short", "urls": ["turn:a:3478"]}},
            "turn.secret",
        ),
        ({"state_dir": "/tmp/x", "turn": {"secret": "s" * 32, "urls": ["http://a"]}}, "turn.urls"),
    ],
)
def test_bad_proxy_config_exits_2_naming_key(tmp_path: Path, doc: dict[str, Any], key: str) -> None:
    """Pins: a bad proxy config stops `mirage serve` (and the device commands) with exit 2 and
    a message naming the key path, before anything listens."""
    config = write_config(tmp_path, doc)
    for args in (("serve",), ("list-devices",)):
        out = mirage_ctl(config, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert f"bad proxy config: {key}: expected" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_tls_serves_wss_with_the_configured_certificate(tmp_path: Path) -> None:
    """Pins: with `tls` {cert, key} the proxy serves wss:// with that certificate (a client
    trusting only it is welcomed), and refuses plain ws:// on the same port."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    port = free_port()
    config = write_config(
        tmp_path,
        {
            "listen": f"127.0.0.1:{port}",
            "state_dir": str(tmp_path / "state"),
            "tls": {"cert": str(cert), "key": str(key)},
        },
    )
    out = mirage_ctl(config, "add-device", "tls printer")
    device_id, secret = out.stdout.split()[1], out.stdout.splitlines()[1].split()[1]
    proc = subprocess.Popen(
        [TITANIUMCTL, "mirage", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    async def run() -> None:
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 20
            while True:
                try:
                    ws = await session.ws_connect(f"wss://127.0.0.1:{port}/device", ssl=trust)
                    break
                except aiohttp.ClientConnectorError:
                    assert proc.poll() is None and time.monotonic() < deadline
                    await asyncio.sleep(0.1)
            await ws.send_json({"type": "hello", "device": device_id, "secret": secret})
            assert await ws.receive_json(timeout=10) == {"type": "welcome"}
            await ws.close()
            with pytest.raises(aiohttp.ClientError):
                await session.ws_connect(f"ws://127.0.0.1:{port}/device")

    try:
        asyncio.run(run())
    finally:
        proc.terminate()
        log, _ = proc.communicate(timeout=10)
    assert f"listening on wss://127.0.0.1:{port}/device" in log and "plain ws://" not in log
