"""How the video arrives, as ``<titanium-video>`` tells it: a page on another origin plays a
real stack's camera and the element's ``stats.route`` (and overlay) name the selected ICE
candidate pair — host to host on the LAN, and through a real coturn, over UDP and over TCP,
when the element is forced to ``ice-policy="relay"``."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser import Browser, Page, find_chromium
from tests.integration.conftest import Stack
from tests.integration.origin import OtherOrigin
from tests.integration.test_turn_coturn import SECRET, Coturn
from titanium.mirage.turn import ice_servers

PLAYER = "document.querySelector('titanium-video')"

# (base, attributes) → adds the element, imported from the stack, to the other origin's page.
ADD_PLAYER_JS = """async (base, attributes) => {
  await import(base + '/titanium-video.js');
  const v = document.createElement('titanium-video');
  v.setAttribute('src', base + '/');
  for (const [name, value] of Object.entries(attributes)) v.setAttribute(name, value);
  document.body.appendChild(v);
  return true;
}"""


# Chromium enumerates every interface (127.0.0.1 among them) only for a page allowed to use
# a camera; otherwise it binds its ICE socket to 0.0.0.0, and the printer on 127.0.0.1 sees
# the page at an address none of its host candidates has: peer-reflexive, on one machine.
CAMERA_PERMISSION = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
ALLOW_CAMERA_JS = """(async () => {
  const stream = await navigator.mediaDevices.getUserMedia({video: true});
  stream.getTracks().forEach((t) => t.stop());
  return true;
})()"""


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless Chromium that grants pages the (fake) camera, so a page's host candidates
    are the machine's addresses as on a LAN, loopback included."""
    if find_chromium() is None:
        pytest.skip("browser tests need Debian's chromium: apt-get install chromium")
    with Browser.launch(extra_args=CAMERA_PERMISSION) as b:
        yield b


def _play(page: Page, base: str, attributes: dict[str, str]) -> dict[str, Any]:
    page.eval(ALLOW_CAMERA_JS)
    page.eval(f"({ADD_PLAYER_JS})({base!r}, {attributes!r})")
    stats: dict[str, Any] = page.wait_for(
        f"{PLAYER}.stats.mode === 'webrtc' && {PLAYER}.stats.route"
        f" && {PLAYER}.stats.framesDecoded > 10 && {PLAYER}.stats",
        30,
    )
    return stats


def _overlay(page: Page) -> str:
    text: str = page.eval(f"{PLAYER}.shadowRoot.querySelector('.overlay').textContent")
    return text


def test_on_the_lan_the_route_is_direct_host_to_host(
    stack: Stack, browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins: the element said nothing of how the video arrives (no stats.route, no word in
    the overlay), so a remote viewer could not tell P2P from a relay."""
    page = browser.open(other_origin.url("/"))
    stats = _play(page, stack.base, {"camera-id": "cam0", "mode": "webrtc"})
    route = stats["route"]
    assert route == {**route, "kind": "direct", "local": "host", "remote": "host"}, stats
    assert route["protocol"] == "udp" and route["relayProtocol"] is None, stats
    assert _overlay(page).endswith(" · direct"), _overlay(page)


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    if shutil.which("turnserver") is None:
        pytest.skip("needs Debian's coturn (turnserver): apt-get install coturn")
    (tmp_path / "coturn").mkdir()
    server = Coturn(tmp_path / "coturn")
    yield server
    server.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_forced_relay_goes_through_coturn_and_names_its_transport(
    make_stack: Callable[..., Stack],
    coturn: Coturn,
    browser: Browser,
    other_origin: OtherOrigin,
    transport: str,
) -> None:
    """Pins: no way to force a relay from the page (a user debugging TURN had none) and no
    word on whether video was relayed, nor over which transport the browser reached TURN."""
    turn = ice_servers(SECRET, [coturn.url(transport)], "viewer", ttl=600)
    stack = make_stack(mirage={"titanium_streams": {"turn_servers": turn}})
    page = browser.open(other_origin.url("/"))
    stats = _play(page, stack.base, {"camera-id": "cam0", "mode": "webrtc", "ice-policy": "relay"})
    route = stats["route"]
    report = f"{stats}\n{coturn.tail()}\n{page.diagnostics()}"
    assert route["kind"] == "relay" and route["local"] == "relay", report
    assert route["relayProtocol"] == transport, report
    assert f"relayed (TURN over {transport})" in _overlay(page), _overlay(page)
