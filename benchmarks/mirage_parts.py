"""What benchmarks/mirage.py starts and plays: coturn and a Mirage proxy on 127.0.0.1, each a
process of ours stopped by its PID, and an aiortc WHEP viewer that times its own way to the
first decoded frame."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.stack import TITANIUMCTL, Child, terminate

TURN_SECRET = "mirage-bench-" + "s" * 32
START_BOUND = 20.0
FIRST_FRAME_BOUND = 15.0


def udp_tcp_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


class Coturn:
    """turnserver on loopback with the REST shared secret the proxy mints from; no config
    file (``-n``), so /etc/turnserver.conf does not change the figures."""

    def __init__(self, tmp: Path) -> None:
        self.port = udp_tcp_port()
        argv = [
            "turnserver",
            "-n",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={self.port}",
            "--use-auth-secret",
            f"--static-auth-secret={TURN_SECRET}",
            "--realm=mirage.bench",
            # Both peers are on loopback here; a production coturn must not allow this.
            "--allow-loopback-peers",
            f"--userdb={tmp / 'turndb'}",
            f"--pidfile={tmp / 'turnserver.pid'}",
            f"--log-file={tmp / 'turnserver.log'}",
            "--simple-log",
            "--no-stdout-log",
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_BOUND
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"turnserver did not listen on {self.port}")
            time.sleep(0.1)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def close(self) -> None:
        terminate(self.proc, 5)


class Proxy(Child):
    """``titaniumctl mirage serve`` with coturn as its ``turn``."""

    def __init__(self, tmp: Path, turn_port: int) -> None:
        self.port = udp_tcp_port()
        self.state_dir = tmp / "proxy"
        self.config = tmp / "proxy.json"
        turn = {"secret": TURN_SECRET, "urls": [f"turn:127.0.0.1:{turn_port}?transport=udp"]}
        # Every viewer and exchange of the benchmark comes from 127.0.0.1 as fast as it can:
        # the limits are lifted so that what is measured is the proxy's own cost.
        bursts = ("address_burst", "token_burst", "device_burst")
        limits: dict[str, float] = {k: 10000 for k in bursts}
        limits |= {k: 10000.0 for k in ("address_rate", "token_rate", "device_rate")}
        limits |= {"sessions_per_token": 10000, "sessions_per_device": 10000}
        doc = {
            "listen": f"127.0.0.1:{self.port}",
            "state_dir": str(self.state_dir),
            "turn": turn,
            "limits": limits,
        }
        self.config.write_text(json.dumps(doc))
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([TITANIUMCTL, "mirage", "serve", "--config", str(self.config)])
        deadline = time.monotonic() + START_BOUND
        while True:
            try:
                self.health()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("the proxy did not answer /health\n" + self.log()) from None
                time.sleep(0.1)

    def ctl(self, *args: str) -> dict[str, str]:
        out = subprocess.run(
            [TITANIUMCTL, "mirage", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"titaniumctl mirage {args[0]}: {out.stderr}")
        return {
            k.strip(): v.strip()
            for k, v in (ln.split(":", 1) for ln in out.stdout.splitlines() if ":" in ln)
        }

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/health", timeout=5) as res:
            doc: dict[str, Any] = json.load(res)
        return doc

    def wait_online(self, count: int, bound: float) -> None:
        deadline = time.monotonic() + bound
        while self.health()["devices_online"] < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.health()['devices_online']} of {count} devices online")
            time.sleep(0.2)

    def close(self) -> None:
        terminate(self.proc, 10)


@dataclass
class View:
    post_ms: float = 0.0  # offer POSTed → 201 with the answer
    first_frame_ms: float = 0.0  # offer made → first frame decoded
    pair: list[str] = field(default_factory=list)
    frames: int = 0
    bytes_held: int = 0  # bytes the transport received over the hold (SRTP, RTCP)
    held_s: float = 0.0


def _link_servers(headers: list[str]) -> list[dict[str, str]]:
    """RTCIceServer fields from the proxy's OPTIONS ``Link: rel="ice-server"`` headers."""
    out = []
    for h in headers:
        url = re.match(r"<([^>]+)>", h)
        user, cred = re.search(r'username="([^"]*)"', h), re.search(r'credential="([^"]*)"', h)
        if url and user and cred:
            out.append({"urls": url[1], "username": user[1], "credential": cred[1]})
    return out


async def _bytes_received(pc: Any) -> int:
    stats = await pc.getStats()
    # aiortc counts bytes per transport only: SRTP and RTCP, what coturn relays.
    return sum(int(s.bytesReceived) for s in stats.values() if s.type == "transport")


async def view(url: str, relay: bool = False, hold: float = 0.0, on_hold: Any = None) -> View:
    """Play a WHEP ``url`` (the query kept for every request) with aiortc; relay-only when
    ``relay``, with the ICE servers the proxy's OPTIONS hands out. ``on_hold(start)`` is
    called, then ``on_hold(stop)``, around ``hold`` seconds of play after the first frame."""
    import aiohttp
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    got = View()
    async with aiohttp.ClientSession() as http:
        servers: list[Any] = []
        if relay:
            async with http.options(url) as r:
                servers = [RTCIceServer(**s) for s in _link_servers(r.headers.getall("Link", []))]
            if not servers:
                raise RuntimeError("the proxy handed out no TURN server")
        t0 = time.monotonic()
        policy = RTCIceTransportPolicy.RELAY if relay else RTCIceTransportPolicy.ALL
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
        tracks: asyncio.Queue[Any] = asyncio.Queue()
        pc.on("track", lambda t: tracks.put_nowait(t))
        session_url = ""
        try:
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            t_post = time.monotonic()
            headers = {"Content-Type": "application/sdp"}
            async with http.post(url, data=pc.localDescription.sdp, headers=headers) as r:
                answer = await r.text()
                if r.status != 201:
                    raise RuntimeError(f"POST {r.status}: {answer[:200]}")
                got.post_ms = (time.monotonic() - t_post) * 1000
                session_url = urllib.parse.urljoin(url, r.headers["Location"])
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            track = await asyncio.wait_for(tracks.get(), FIRST_FRAME_BOUND)
            await asyncio.wait_for(track.recv(), FIRST_FRAME_BOUND)
            got.first_frame_ms = (time.monotonic() - t0) * 1000
            got.frames = 1
            ice = pc.getTransceivers()[0].receiver.transport.transport
            nominated = ice._connection._nominated.get(1)  # aioice shows the pair only here
            if nominated is not None:
                got.pair = [nominated.local_candidate.type, nominated.remote_candidate.type]
            if hold > 0:
                b0, h0 = await _bytes_received(pc), time.monotonic()
                if on_hold:
                    on_hold(True)
                end = h0 + hold
                while time.monotonic() < end:
                    await asyncio.wait_for(track.recv(), FIRST_FRAME_BOUND)
                    got.frames += 1
                if on_hold:
                    on_hold(False)
                got.bytes_held = await _bytes_received(pc) - b0
                got.held_s = time.monotonic() - h0
        finally:
            if session_url:
                async with http.delete(session_url) as r:
                    await r.read()
            await pc.close()
    return got
