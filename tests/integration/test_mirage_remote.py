"""Remote viewing end to end across two NATs (issue 11's "P2P", "Relay" and "proxy restart"):
a real printer stack (`titaniumctl up`) in the printer namespace dialling a real
`titaniumctl mirage serve` in the internet namespace, coturn beside it, and headless Chromium
in the viewer namespace opening the proxy's /view page (tests/integration/nat.py).

The printer dials plain ws:// with ``mirage.plain_ws: true``: the proxy's address here is not a
loopback one, and the namespaced "internet" is the trusted network the key exists for; TLS to
the proxy is pinned by test_mirage_dialout.py. ``webrtc.ice_addresses`` is left empty so the
printer finds its own LAN address, as on a real Pi. One proxy, coturn and stack per module.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiortc import RTCPeerConnection

from tests.integration.browser import Page
from tests.integration.conftest import TITANIUMCTL, Stack
from tests.integration.nat import Nat
from tests.integration.netns import inside
from tests.stack import Child

PROXY_PORT = 8443
CAMERA = "cam0"
PLAYER = "document.querySelector('titanium-video')"
FRAMES = 60
CASE_TIMEOUT = 30  # each playback bound; the module's setup is apart


class RemoteProxy:
    """`titaniumctl mirage serve` in the internet namespace, killable and restartable."""

    def __init__(self, nat: Nat, tmp: Path) -> None:
        self.nat = nat
        self.base = f"http://{nat.proxy_ip}:{PROXY_PORT}"
        assert nat.coturn is not None
        doc = {
            "listen": f"{nat.proxy_ip}:{PROXY_PORT}",
            "state_dir": str(tmp / "proxy"),
            "turn": {
                "secret": nat.coturn.secret,
                "urls": [nat.coturn.url("udp"), nat.coturn.url("tcp")],
            },
        }
        self.config = tmp / "proxy.json"
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

    def fields(self, *args: str) -> dict[str, str]:
        lines = self.ctl(*args).splitlines()
        return {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in lines if ":" in ln)}

    def start(self) -> None:
        self.child = self.nat.child(
            self.nat.internet, [TITANIUMCTL, "mirage", "serve", "--config", str(self.config)]
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.health()
                return
            except OSError:
                assert self.child.proc.poll() is None, self.child.log()
                assert time.monotonic() < deadline, "no /health in 20 s\n" + self.child.log()
                time.sleep(0.05)

    def kill(self) -> None:
        # ip netns exec execs titaniumctl, so this PID is the proxy itself.
        assert self.child is not None
        self.child.proc.send_signal(signal.SIGKILL)
        self.child.proc.wait(10)

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        with inside(self.nat.viewer):
            try:
                with urllib.request.urlopen(self.base + path, timeout=2) as r:
                    return r.status, dict(r.headers), r.read()
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers), e.read()

    def post_offer(self, device: str, token: str) -> tuple[int, dict[str, str], bytes]:
        """A recvonly WHEP offer from an aiortc peer in the viewer namespace, answered by the
        printer through the proxy; the session is deleted again."""

        async def offer() -> tuple[int, dict[str, str], bytes]:
            pc = RTCPeerConnection()
            try:
                pc.addTransceiver("video", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
                url = f"{self.base}/d/{device}/whep/{CAMERA}?token={token}"
                async with aiohttp.ClientSession() as http:
                    sdp = pc.localDescription.sdp
                    headers = {"Content-Type": "application/sdp"}
                    async with http.post(url, data=sdp, headers=headers) as r:
                        answer = (r.status, dict(r.headers), await r.read())
                    if "Location" in r.headers:
                        await http.delete(self.base + r.headers["Location"])
                return answer
            finally:
                await pc.close()

        loop = self.nat.loop(self.nat.viewer)
        try:
            return loop.run(offer(), 20)
        finally:
            loop.close()

    def health(self) -> dict[str, Any]:
        code, _, body = self.get("/health")
        assert code == 200, code
        doc: dict[str, Any] = json.loads(body)
        return doc

    def wait_online(self, device: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if device in self.health()["devices"]:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{device} not on the proxy in {timeout} s: {self.health()}")


@dataclass
class World:
    nat: Nat
    proxy: RemoteProxy
    stack: Stack
    device: str
    token: str

    def view_url(self, suffix: str) -> str:
        return f"{self.proxy.base}/view/{self.device}/{CAMERA}{suffix}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with Nat.create_or_skip() as nat:
        # The proxy takes no static-auth-secret under 16 characters (mirage/config.py).
        nat.start_coturn(tmp_path_factory.mktemp("turn"), secret="remote-viewing-test-secret")
        assert nat.coturn is not None
        proxy = RemoteProxy(nat, tmp_path_factory.mktemp("mirage"))
        proxy.start()
        dev = proxy.fields("add-device", "remote printer")
        token = proxy.fields("token", "--device", dev["id"], "--camera", CAMERA)["token"]
        stack = Stack(
            tmp_path_factory.mktemp("printer"),
            [{"id": CAMERA, "device": "testpattern", "resolution": "640x480"}],
            netns=nat.printer,
            webrtc={"ice_addresses": []},
            mirage={
                "titanium_streams": {
                    "enabled": True,
                    "stun_servers": [f"stun:{nat.coturn.ip}:{nat.coturn.port}"],
                },
                "proxy": f"ws://{nat.proxy_ip}:{PROXY_PORT}",
                "plain_ws": True,
                "device": {"id": dev["id"], "secret": dev["secret"]},
            },
        )
        try:
            proxy.wait_online(dev["id"], 20)
            yield World(nat, proxy, stack, dev["id"], token)
        finally:
            stack.stop()


@pytest.fixture(autouse=True)
def _clean(world: World) -> Iterator[None]:
    yield
    world.nat.reset()


def _played(page: Page) -> dict[str, Any]:
    """The element's stats once it decoded FRAMES frames, with a selected route."""
    stats: dict[str, Any] = page.wait_for(
        f"{PLAYER} && {PLAYER}.stats.framesDecoded >= {FRAMES} && {PLAYER}.stats.route"
        f" && {PLAYER}.stats",
        CASE_TIMEOUT,
    )
    return stats


# What the browser's peer connection received: tells "no packets" from "no keyframe".
RTP_JS = f"""(async () => {{
  const pc = {PLAYER}?.peerConnection;
  if (!pc) return "no peer connection";
  const out = [pc.iceConnectionState, pc.connectionState];
  const report = await pc.getStats();
  const kind = (id) => report.get(id)?.candidateType + "/" + report.get(id)?.protocol;
  report.forEach((s) => {{
    if (s.type === "candidate-pair" && (s.bytesReceived || s.nominated || s.selected))
      out.push({{pair: kind(s.localCandidateId) + ">" + kind(s.remoteCandidateId),
        state: s.state, nominated: s.nominated, rx: s.bytesReceived, tx: s.bytesSent}});
    if (s.type === "inbound-rtp") out.push({{packets: s.packetsReceived,
      frames: s.framesReceived, keys: s.keyFramesDecoded, plis: s.pliCount}});
  }});
  return JSON.stringify(out);
}})()"""


def _watch(world: World, suffix: str) -> dict[str, Any]:
    browser = world.nat.browser()
    try:
        page = browser.open(world.view_url(suffix))
        try:
            return _played(page)
        except AssertionError as e:
            assert world.nat.coturn is not None
            stats = page.eval(f"{PLAYER} && JSON.stringify({PLAYER}.stats)")
            stats += " " + str(page.eval(RTP_JS, 10))
            raise AssertionError(
                f"{e}\nlast stats {stats}\n{page.diagnostics()}\n-- coturn:\n"
                f"{world.nat.coturn.tail()}\n-- printer:\n{world.stack.log()}"
            ) from None
    finally:
        browser.close()


def test_the_view_page_has_no_token_and_the_scripts_allow_any_origin(world: World) -> None:
    """Pins: the proxy served no page and no viewer scripts (404), so a remote viewer had
    nothing to open; and a token given in ?token= must never be rendered into the HTML."""
    code, headers, body = world.proxy.get(f"/view/{world.device}/{CAMERA}?token={world.token}")
    assert code == 200 and headers["Content-Type"].startswith("text/html"), (code, headers)
    page = body.decode()
    assert world.token not in page and "token=" not in page, page
    assert f'data-device="{world.device}"' in page and 'id="ask"' in page, page
    assert headers.get("Referrer-Policy") == "no-referrer", headers
    for script in ("titanium-video.js", "whep.js", "timecode.js", "view.js"):
        code, headers, _ = world.proxy.get(f"/static/{script}")
        assert code == 200 and headers["Content-Type"].startswith("text/javascript"), script
        assert headers.get("Access-Control-Allow-Origin") == "*", (script, headers)
    assert world.proxy.get("/static/nothing.js")[0] == 404
    assert world.proxy.get("/view/a%3Cb/cam0")[0] == 404


def test_without_a_token_the_page_asks_for_one_and_keeps_it_in_the_fragment(
    world: World,
) -> None:
    """Pins: with no token in the URL the page must ask for it (a form) and only then put
    the element on the page, the token kept in the fragment; and a ?token= given in the URL
    must leave the query (address bar, history, Referer) for the fragment."""
    browser = world.nat.browser()
    try:
        page = browser.open(world.view_url(""))
        page.wait_for("!document.getElementById('ask').hidden", 10)
        assert page.eval(f"{PLAYER} === null")
        page.eval(
            f"document.querySelector('#ask input').value = {world.token!r};"
            "document.querySelector('#ask').requestSubmit(); true"
        )
        page.wait_for(f"{PLAYER} !== null", 10)
        assert page.eval(f"{PLAYER}.getAttribute('token')") == world.token
        assert page.eval(f"{PLAYER}.getAttribute('mirage-server')") == world.proxy.base
        assert page.eval("location.hash") == f"#token={world.token}"
        page.navigate(world.view_url(f"?token={world.token}"))
        page.wait_for(f"{PLAYER} !== null", 10)
        assert page.eval("location.search") == "", page.eval("location.href")
        assert page.eval("location.hash") == f"#token={world.token}"
        assert page.eval("document.getElementById('ask').hidden")
    finally:
        browser.close()


def test_p2p_through_both_nats(world: World) -> None:
    """Pins issue 11's "P2P through NAT": the viewer behind its NAT decodes >= 60 frames from
    the printer behind its own, and the selected pair is not a relay (kind 'nat'). It failed
    when the printer's aioice stopped checking at the first nomination (a relay pair): the
    viewer's srflx candidate, trickled later, was never checked, so the printer's NAT never
    opened towards it (ice.keep_checking)."""
    stats = _watch(world, f"?token={world.token}")
    assert stats["route"]["kind"] == "nat", stats


def test_relay_over_udp_when_udp_between_the_nats_is_dropped(world: World) -> None:
    """Pins issue 11's "Relay" over UDP: with no UDP between the two NATs, video still
    arrives, through coturn over UDP. Either peer may hold the relay candidate of the pair;
    when it is the printer's, the viewer's leg to coturn is its own (UDP) candidate's."""
    world.nat.drop_udp("between-nats")
    stats = _watch(world, f"#token={world.token}")
    route = stats["route"]
    assert route["kind"] == "relay", stats
    assert (route["relayProtocol"] or route["protocol"]) == "udp", stats


def test_relay_over_tcp_when_the_viewer_has_no_udp(world: World) -> None:
    """Pins issue 11's "Relay" over TCP: the viewer's router forwards no UDP at all, and the
    video arrives through coturn over TCP. It never played while coturn's sends to a private
    address failed with ENETUNREACH in the harness, which made coturn close the viewer's
    TCP allocation (nat.py's silent default route)."""
    world.nat.drop_udp("viewer-all")
    stats = _watch(world, f"#token={world.token}")
    route = stats["route"]
    assert route["kind"] == "relay" and route["relayProtocol"] == "tcp", stats


ORIGIN_PAGE = """<!doctype html><html><body><script type="module">
const proxy = %(proxy)s;
await import(proxy + "/static/titanium-video.js");
const v = document.createElement("titanium-video");
v.setAttribute("mirage-server", proxy);
v.setAttribute("device", %(device)s);
v.setAttribute("camera-id", %(camera)s);
v.setAttribute("token", new URLSearchParams(location.hash.slice(1)).get("token"));
document.body.appendChild(v);
</script></body></html>"""


def test_a_printer_ui_on_another_origin_imports_the_element_from_the_proxy(
    world: World,
) -> None:
    """Pins: another origin's page could not import the element from the proxy (no scripts
    served, or no CORS on them) and so could not signal to the printer remotely."""
    params = {k: json.dumps(v) for k, v in (("proxy", world.proxy.base), ("device", world.device))}
    text = ORIGIN_PAGE % {**params, "camera": json.dumps(CAMERA)}

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=text, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    server = world.nat.serve_http(world.nat.internet, world.nat.proxy_ip, PROXY_PORT + 1, app)
    browser = world.nat.browser()
    try:
        view = browser.open(server.url(f"/#token={world.token}"))
        # A module script from another origin runs only with CORS: the element is defined
        # and has signalled through the proxy (a refused token would show as its error).
        view.wait_for(f"customElements.get('titanium-video') !== undefined && {PLAYER}", 10)
        view.wait_for(f"{PLAYER}.stats.mode === 'webrtc' || {PLAYER}.stats.error", 20)
        stats = view.eval(f"{PLAYER}.stats")
        assert "401" not in str(stats["error"]) and "403" not in str(stats["error"]), stats
    finally:
        browser.close()
        server.close()


def test_proxy_killed_and_restarted_device_back_within_5s(
    world: World,
) -> None:
    """Pins issue 11's "proxy restart": after the proxy is killed (SIGKILL, by PID) and started
    again, the printer is back on /health within 5 s (counted from the restarted proxy's
    first /health answer) and its signalling works again."""
    world.proxy.kill()
    world.proxy.start()
    world.proxy.wait_online(world.device, 5)
    code, _, body = world.proxy.post_offer(world.device, world.token)
    assert code == 201 and body.startswith(b"v=0"), (code, body[:200])
