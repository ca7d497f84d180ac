"""Nobody without a valid token sees a frame remotely (issue 11, "Auth"), end to end on
127.0.0.1: a real ``titaniumctl mirage serve``, a real printer stack dialling it as a device
added by the real CLI, and aiortc WHEP viewers signalling through the proxy. Each refusal is
checked for its status and reason, and for disturbing nothing: a viewer with a valid token
keeps receiving frames through all of them.

The wrong device secret is test_mirage_dialout.py's
``test_wrong_secret_is_refused_and_logged_as_a_config_problem``."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.browser import Browser
from tests.integration.conftest import TITANIUMCTL, Stack
from tests.integration.origin import OtherOrigin
from tests.integration.rtc_client import HeldPeer
from tests.integration.test_mirage_dialout import Proxy
from titanium.common.tokens import Tokens

# A fixed SDP offer is enough for the refusals: each is decided before the printer is asked.
OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
    "a=fingerprint:sha-256 "
    + ":".join(["AB"] * 32)
    + "\r\na=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:96 H264/90000\r\n"
)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    p = Proxy(tmp_path)
    yield p
    p.stop()


@pytest.fixture
def viewers() -> Iterator[list[HeldPeer]]:
    held: list[HeldPeer] = []
    yield held
    for v in held:
        v.close()


def mint(proxy: Proxy, *args: str) -> tuple[str, str]:
    """`titaniumctl mirage token ARGS`: (token, id)."""
    out = proxy.ctl("token", *args)
    fields = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in out.splitlines())}
    return fields["token"], fields["id"].split()[0]


def whep_url(proxy: Proxy, device: str, camera: str, token: str | None) -> str:
    url = f"http://127.0.0.1:{proxy.port}/d/{device}/whep/{camera}"
    return url + (f"?token={token}" if token else "")


def post(url: str) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=OFFER.encode(), headers={"Content-Type": "application/sdp"}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def watch(viewers: list[HeldPeer], url: str) -> HeldPeer:
    viewer = HeldPeer("", url=url)
    viewers.append(viewer)
    assert viewer.playing.wait(30), f"no frame through the proxy: {viewer.error}"
    return viewer


def still_playing(viewer: HeldPeer, what: str) -> None:
    """``viewer`` receives more frames now: ``what`` did not disturb it."""
    before = viewer.frames
    deadline = time.monotonic() + 5
    while viewer.frames < before + 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert viewer.frames >= before + 5, f"after {what}: {viewer.frames - before} frames in 5 s"


def stopped_since(viewer: HeldPeer, since: float) -> float:
    """Seconds from ``since`` (monotonic) to the viewer's last frame, once frames have
    stopped for 1.5 s (AssertionError if they keep coming for 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if time.monotonic() - viewer.last_frame > 1.5:
            return viewer.last_frame - since
        time.sleep(0.05)
    raise AssertionError(f"frames still arriving 10 s later ({viewer.frames} in all)")


def online_stack(
    proxy: Proxy, make_stack: Callable[..., Stack], **titanium: object
) -> tuple[Stack, str, str]:
    """A printer stack dialled in to ``proxy``: (stack, device id, camera id)."""
    device_id, secret = proxy.add()
    proxy.start()
    stack = make_stack(
        mirage={
            "titanium_streams": {"enabled": True},
            "proxy": f"ws://127.0.0.1:{proxy.port}",
            "device": {"id": device_id, "secret": secret},
        },
        **titanium,
    )
    proxy.wait_online(device_id, 15)
    return stack, device_id, next(iter(stack.status()["cameras"]))


def test_refusals_named_and_a_valid_viewer_keeps_playing(
    proxy: Proxy, make_stack: Callable[..., Stack], viewers: list[HeldPeer]
) -> None:
    """Pins: no token, an expired one, one for another device or camera, a LAN token and a
    revoked one are each refused by the proxy with their code and reason while a viewer with
    a valid token keeps receiving frames; a revoked token's live session stops delivering
    frames within 2 s of `titaniumctl mirage revoke`."""
    stack, device, camera = online_stack(proxy, make_stack)
    good, _ = mint(proxy, "--device", device)
    keeper = watch(viewers, whep_url(proxy, device, camera, good))

    other_device, _ = proxy.add()
    state = Path(json.loads(proxy.config.read_text())["state_dir"])
    # The CLI refuses a lifetime under a minute: the proxy's own key signs one already over.
    expired = Tokens(state).create("expired viewer", ttl=-10, devices=[device])[0]
    lan = subprocess.run(
        [TITANIUMCTL, "token", "create", "--json", "--config", str(stack.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    cases = [
        ("no token", None, 401, "this needs a token"),
        ("an expired token", expired, 401, "the token has expired"),
        (
            "a token for another device",
            mint(proxy, "--device", other_device)[0],
            403,
            f"this token does not reach device {device}",
        ),
        (
            "a token for another camera",
            mint(proxy, "--device", device, "--camera", "elsewhere")[0],
            403,
            f"this token does not show camera {camera}",
        ),
        (
            "the printer's own LAN token",
            json.loads(lan.stdout)["token"],
            401,
            "the token is not one this proxy issued",
        ),
    ]
    for what, token, status, reason in cases:
        code, text = post(whep_url(proxy, device, camera, token))
        assert code == status and text.startswith(reason), (what, code, text)
        still_playing(keeper, what)

    doomed_token, doomed_id = mint(proxy, "--device", device)
    doomed = watch(viewers, whep_url(proxy, device, camera, doomed_token))
    proxy.ctl("revoke", doomed_id)
    revoked_at = time.monotonic()
    last = stopped_since(doomed, revoked_at)
    print(f"revoked session's last frame {last:.2f} s after the revoke returned")
    assert last < 2.0, f"frames for {last:.2f} s after the revoke"
    url = whep_url(proxy, device, camera, doomed_token)
    assert post(url) == (401, "the token was revoked")  # new offers too
    still_playing(keeper, "a revocation")


def test_a_proxy_token_does_not_open_the_front_door(
    proxy: Proxy, make_stack: Callable[..., Stack]
) -> None:
    """Pins: a token the proxy signed is refused (401) by the printer's own front door, for
    signalling and status alike: the two authorities' tokens never open each other."""
    stack, device, camera = online_stack(proxy, make_stack, http={"auth": "token"})
    token, _ = mint(proxy, "--device", device)
    code, _ = post(stack.url(f"/whep?camera={camera}&token={token}"))
    assert code == 401
    request = urllib.request.Request(
        stack.url("/status"), headers={"Authorization": f"Bearer {token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401


def test_a_removed_device_is_cut_off_and_its_live_sessions_end(
    proxy: Proxy, make_stack: Callable[..., Stack], viewers: list[HeldPeer]
) -> None:
    """Pins: after `titaniumctl mirage remove-device` new offers get 503 with the reason,
    the printer says it was removed, and its live remote session stops delivering frames
    within 2 s. Before: the printer kept every peer connection of the removed link, so a
    viewer of a removed device went on watching."""
    stack, device, camera = online_stack(proxy, make_stack)
    token, _ = mint(proxy, "--device", device)
    viewer = watch(viewers, whep_url(proxy, device, camera, token))
    proxy.ctl("remove-device", device)
    removed_at = time.monotonic()
    while device in proxy.health()["devices"] and time.monotonic() - removed_at < 2:
        time.sleep(0.05)
    assert post(whep_url(proxy, device, camera, token)) == (
        503,
        f"device {device} is not connected",
    )
    last = stopped_since(viewer, removed_at)
    print(f"removed device's session: last frame {last:.2f} s after remove-device returned")
    assert last < 2.0, f"frames for {last:.2f} s after the removal"
    stack.wait_for(lambda d: "refused (4403" in d["services"]["mirage"].get("detail", ""), 5)


# (script URL, attributes) → adds the element to the page.
ADD_PLAYER_JS = """async (script, attributes) => {
  await import(script);
  const v = document.createElement('titanium-video');
  for (const [name, value] of Object.entries(attributes)) v.setAttribute(name, value);
  document.body.appendChild(v);
  return true;
}"""
STATS = "document.querySelector('titanium-video').stats"


def test_chromium_on_another_origin_plays_then_is_cut_off_by_a_revoke(
    proxy: Proxy, make_stack: Callable[..., Stack], browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins: the element with mirage-server, on a page of another origin, plays through the
    real proxy with a valid token; after `titaniumctl mirage revoke` its frames stop within
    2 s and its next offer is refused with the proxy's 401 reason."""
    stack, device, camera = online_stack(proxy, make_stack)
    token, token_id = mint(proxy, "--device", device)
    page = browser.open(other_origin.url("/"))
    attributes = {
        "mirage-server": f"http://127.0.0.1:{proxy.port}",
        "device": device,
        "token": token,
        "camera-id": camera,
    }
    page.eval(f"({ADD_PLAYER_JS})({stack.url('/titanium-video.js')!r}, {attributes!r})")
    page.wait_for(f"{STATS}.mode === 'webrtc' && {STATS}.framesDecoded > 10", 30)
    proxy.ctl("revoke", token_id)
    time.sleep(2.0)
    frozen = page.eval(f"{STATS}.framesDecoded")
    time.sleep(1.5)
    assert page.eval(f"{STATS}.framesDecoded") in (0, frozen), "frames after the revoke"
    stats = page.wait_for(f"({STATS}.error ?? '').includes('revoked') && {STATS}", 20)
    assert "401" in stats["error"] and stats["state"] == "failed", stats
