"""Access control in a real headless Chromium (http.auth 'token'): the viewer page passes the
token in its own URL on to every request; from another origin (Mainsail and Fluidd on port
80), Mainsail's MJPEG worker with ``?token=``, the camera-streamer exchange and WHEP with the
token in the path (their clients drop the query) decode frames, and are refused without."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.browser import Browser
from tests.integration.origin import OtherOrigin
from tests.integration.test_webrtc_browser import (
    CAMERA_STREAMER_JS,
    PLAYER,
    WHEP_TRICKLE_JS,
    run_scenario,
)
from tests.stack import Stack
from titanium.common.tokens import Tokens

# (url) → {status, type, error, width}: Mainsail's MJPEG worker (fetch in CORS mode, cut
# the JPEGs out of the chunks), decoding the first whole frame it finds.
MJPEG_WORKER_JS = """async (url) => {
  const r = await fetch(url, {mode: 'cors'});
  const out = {status: r.status, type: r.headers.get('Content-Type')};
  if (r.status !== 200) return {...out, error: (await r.json()).error};
  const reader = r.body.getReader();
  let bytes = new Uint8Array(0);
  const find = (a, b, from) => {
    for (let i = from; i + 1 < bytes.length; i++) {
      if (bytes[i] === a && bytes[i + 1] === b) return i;
    }
    return -1;
  };
  while (bytes.length < 8000000) {
    const {value, done} = await reader.read();
    if (done) break;
    const next = new Uint8Array(bytes.length + value.length);
    next.set(bytes);
    next.set(value, bytes.length);
    bytes = next;
    const start = find(0xff, 0xd8, 0);
    const end = start < 0 ? -1 : find(0xff, 0xd9, start + 2);
    if (end > 0) {
      const bitmap = await createImageBitmap(new Blob([bytes.slice(start, end + 2)]));
      await reader.cancel();
      return {...out, width: bitmap.width, height: bitmap.height};
    }
  }
  await reader.cancel();
  return {...out, error: 'no whole JPEG'};
}"""

# (url, body, contentType) → {status, error}: one refused signalling request, read
# cross-origin (its CORS headers must be there for the page to see the 401).
REFUSED_JS = """async (url, body, type) => {
  const r = await fetch(url, {method: 'POST', headers: {'Content-Type': type}, body});
  return {status: r.status, error: (await r.json()).error};
}"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    work = tmp_path_factory.mktemp("auth-browser")
    token = Tokens(work / "state").create("browser", ttl=3600)[0]
    stack = Stack(
        work,
        [{"id": "cam0", "device": "testpattern", "resolution": "640x480"}],
        http={"auth": "token"},
    )
    try:
        yield stack, token
    finally:
        stack.stop()


def test_viewer_page_plays_with_the_token_of_its_own_url(
    secured: tuple[Stack, str], browser: Browser
) -> None:
    """Pins: the page's players and its /status fetch did not carry the page's token, so a
    page opened with ?token= showed nothing once auth was on."""
    stack, token = secured
    for url, mode in [
        (f"/?token={token}&mode=mjpeg", "mjpeg"),
        (f"/?token={token}", "webrtc"),  # WHEP, the token in the path
        (f"/t/{token}/?mode=mjpeg", "mjpeg"),
    ]:
        page = browser.open(stack.url(url))
        page.wait_for(f"{PLAYER}?.stats.mode === '{mode}' && {PLAYER}.stats.framesDecoded > 5", 25)
        summary = page.wait_for("document.getElementById('summary').textContent", 5)
        assert "mjpeg: running" in summary, (url, summary)
        page.close()
    page = browser.open(stack.url("/?mode=mjpeg"))
    summary = page.wait_for(
        "document.getElementById('summary').textContent.startsWith('status unavailable')"
        " && document.getElementById('summary').textContent",
        10,
    )
    stats = page.eval(f"{PLAYER}?.stats ?? null")
    assert "needs a token" in summary, summary
    assert stats is None, (summary, stats)  # no /status: no camera to show, nothing played


def test_printer_ui_dialects_from_another_origin_play_with_a_token_only(
    secured: tuple[Stack, str], browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins: Mainsail's MJPEG worker (?token=), the camera-streamer exchange and WHEP with
    /t/TOKEN/ (whose session URL must keep the prefix for PATCH and DELETE) were either
    served without a token or refused with one."""
    stack, token = secured
    page = browser.open(other_origin.url("/"))
    base = stack.base
    mjpeg: dict[str, Any] = run_scenario(page, MJPEG_WORKER_JS, f"{base}/stream?token={token}")
    assert (mjpeg["status"], mjpeg.get("width"), mjpeg.get("height")) == (200, 640, 480), mjpeg
    refused = run_scenario(page, MJPEG_WORKER_JS, f"{base}/stream")
    assert refused["status"] == 401 and "needs a token" in refused["error"], refused

    streamer = run_scenario(page, CAMERA_STREAMER_JS, f"{base}/t/{token}/webrtc", 6)
    report = f"{streamer}\n{page.diagnostics()}"
    assert streamer["framesDecoded"] >= 20 and not streamer["candidateErrors"], report

    whep = run_scenario(page, WHEP_TRICKLE_JS, f"{base}/t/{token}/whep", 6, "fluidd")
    report = f"{whep}\n{page.diagnostics()}"
    assert whep["framesDecoded"] >= 20, report
    assert f"/t/{token}/whep/" in whep["session"], report
    assert whep["patches"] and all(p["status"] == 204 for p in whep["patches"]), report
    assert whep["deleteStatus"] == 200, report

    offer = '{"type": "request", "iceServers": [], "keepAlive": true}'
    for url, body, kind in [
        (f"{base}/webrtc", offer, "application/json"),
        (f"{base}/t/not-a-token/webrtc", offer, "application/json"),
        (f"{base}/whep", "v=0\r\n", "application/sdp"),
    ]:
        got = run_scenario(page, REFUSED_JS, url, body, kind)
        assert got["status"] == 401, (url, got)
