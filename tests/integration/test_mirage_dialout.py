"""The printer's dial-out to the REAL Mirage proxy: a `titaniumctl up` stack with
`mirage.proxy` set and a `titaniumctl mirage serve` on 127.0.0.1, the device registered with
`titaniumctl mirage add-device`."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import TITANIUMCTL, Stack, free_port
from tests.stack import Child, terminate


class Proxy:
    """A `mirage serve` that can be killed and started again on the same port."""

    def __init__(self, tmp: Path, **extra: Any) -> None:
        self.port = free_port()
        self.config = tmp / "proxy.json"
        doc = {"listen": f"127.0.0.1:{self.port}", "state_dir": str(tmp / "proxy"), **extra}
        self.config.write_text(json.dumps(doc))
        self.child: Child | None = None

    def ctl(self, *args: str) -> str:
        out = subprocess.run(
            [TITANIUMCTL, "mirage", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def add(self) -> tuple[str, str]:
        out = self.ctl("add-device", "test printer")
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return fields["id"].strip(), fields["secret"].strip()

    def start(self) -> float:
        """Start it; when it answers /health (monotonic)."""
        self.child = Child([TITANIUMCTL, "mirage", "serve", "--config", str(self.config)])
        deadline = time.monotonic() + 20
        while True:
            try:
                self.health()
                return time.monotonic()
            except OSError:
                assert self.child.proc.poll() is None, self.child.log()
                assert time.monotonic() < deadline, "no /health in 20 s\n" + self.child.log()
                time.sleep(0.05)

    def health(self) -> dict[str, Any]:
        tls = json.loads(self.config.read_text()).get("tls")
        scheme = "https" if tls else "http"
        trust = ssl.create_default_context(cafile=tls["cert"]) if tls else None
        url = f"{scheme}://127.0.0.1:{self.port}/health"
        with urllib.request.urlopen(url, timeout=2, context=trust) as r:
            doc: dict[str, Any] = json.load(r)
        return doc

    def wait_online(self, device: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if device in self.health()["devices"]:
                return time.monotonic()
            time.sleep(0.05)
        raise AssertionError(f"{device} not online in {timeout} s: {self.health()}")

    def kill(self) -> None:
        assert self.child is not None
        self.child.proc.send_signal(signal.SIGKILL)
        self.child.proc.wait(10)

    def stop(self) -> None:
        if self.child is not None:
            terminate(self.child.proc, 10)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    p = Proxy(tmp_path)
    yield p
    p.stop()


def dialling(
    make_stack: Callable[..., Stack], server: Proxy, device: dict[str, str], **link: Any
) -> Stack:
    return make_stack(
        mirage={
            "titanium_streams": {"enabled": True},
            "proxy": f"ws://127.0.0.1:{server.port}",
            "device": device,
            **link,
        }
    )


def mirage_detail(stack: Stack) -> str:
    return str(stack.status()["services"]["mirage"].get("detail", ""))


def test_device_comes_online_and_is_back_within_5s_of_a_proxy_restart(
    proxy: Proxy, make_stack: Callable[..., Stack]
) -> None:
    """Pins: with `mirage.proxy` and `mirage.device` set, `titaniumctl up` runs a `mirage`
    service that dials the proxy, is welcomed (online in /health, "connected" in /status),
    and after the proxy is SIGKILLed and started again is back on it within 5 s; the stack
    still stops cleanly. Before: the keys were refused and nothing dialled."""
    device_id, secret = proxy.add()
    proxy.start()
    stack = dialling(make_stack, proxy, {"id": device_id, "secret": secret})
    proxy.wait_online(device_id, 15)
    stack.wait_for(lambda d: "connected to" in d["services"]["mirage"].get("detail", ""), 5)
    shown = subprocess.run(
        [TITANIUMCTL, "status", "--config", str(stack.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert "service mirage: running" in shown and "connected to ws://127.0.0.1:" in shown, shown
    proxy.kill()
    stack.wait_for(lambda d: "not connected" in d["services"]["mirage"].get("detail", ""), 10)
    spawned = time.monotonic()
    listening = proxy.start()
    back = proxy.wait_online(device_id, 10)
    print(f"back {back - spawned:.2f} s after the restart, {back - listening:.2f} s after /health")
    assert back - listening < 5.0, f"back {back - listening:.2f} s after the proxy answered"
    assert stack.stop() == 0, stack.log()
    assert stack.leftovers() == []


def test_wrong_secret_is_refused_and_logged_as_a_config_problem(
    proxy: Proxy, make_stack: Callable[..., Stack]
) -> None:
    """Pins: a printer with a wrong device secret is refused by the proxy (4401, never
    online), and says so in its log and /status as a config problem, naming mirage.device."""
    device_id, secret = proxy.add()
    proxy.start()
    stack = dialling(make_stack, proxy, {"id": device_id, "secret": "x" + secret[1:]})
    stack.wait_for(lambda d: "refused (4401" in d["services"]["mirage"].get("detail", ""), 15)
    assert proxy.health()["devices_online"] == 0
    assert "refused this printer's credentials: check mirage.device" in stack.log()
    assert proxy.child is not None and "bad credentials" in proxy.child.log()


def test_config_check_says_where_it_dials(tmp_path: Path) -> None:
    """Pins: `config check` says whether remote viewing dials out, where, or why not."""
    path = tmp_path / "t.json"

    def check(mirage: dict[str, Any]) -> str:
        path.write_text(json.dumps({"titanium": {"cameras": []}, "mirage": mirage}))
        out = subprocess.run(
            [TITANIUMCTL, "config", "check", str(path)], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    on = {"enabled": True}
    dev = {"id": "dev_0123", "secret": "s"}
    assert "dials wss://m.example:8443/device as device dev_0123" in check(
        {"titanium_streams": on, "proxy": "m.example", "device": dev}
    )
    assert "mirage.proxy is not set" in check({"titanium_streams": on})
    assert "mirage.device has no id and secret" in check(
        {"titanium_streams": on, "proxy": "m.example"}
    )


def test_wss_verifies_the_proxy_certificate_against_ca_file(
    tmp_path: Path, make_stack: Callable[..., Stack]
) -> None:
    """Pins: to a TLS proxy the printer dials wss:// and verifies the certificate: with
    `mirage.ca_file` naming the proxy's (self-signed) certificate it is welcomed; with the
    system CAs only it is not, and /status says the certificate failed."""
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
    proxy = Proxy(tmp_path, tls={"cert": str(cert), "key": str(key)})
    try:
        device_id, secret = proxy.add()
        proxy.start()
        device = {"id": device_id, "secret": secret}
        url = f"wss://127.0.0.1:{proxy.port}"
        dialling(make_stack, proxy, device, proxy=url, ca_file=str(cert))
        proxy.wait_online(device_id, 15)
        untrusting = dialling(make_stack, proxy, device, proxy=url)
        untrusting.wait_for(
            lambda d: "certificate verify failed" in d["services"]["mirage"].get("detail", ""),
            15,
        )
        assert proxy.health()["devices"] == [device_id]
    finally:
        proxy.stop()
