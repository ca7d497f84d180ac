"""Cross-origin browsers, as Mainsail and Fluidd pages on port 80 talk to Titanium on 8080:
a page served from another origin runs every exchange in headless Chromium, so Chromium's
own CORS checks (preflights included) decide, not a reading of the headers."""

from __future__ import annotations

from typing import Any

from tests.integration.browser import Browser
from tests.integration.conftest import Stack
from tests.integration.origin import OtherOrigin

# (base) → what each exchange did; a step that throws records its error instead.
CROSS_ORIGIN_JS = """async (base) => {
  const out = {};
  const step = async (name, fn) => {
    try { out[name] = await fn(); } catch (e) { out[name] = {error: String(e)}; }
  };
  await step('whep', async () => {
    const pc = new RTCPeerConnection({iceServers: []});
    pc.addTransceiver('video', {direction: 'recvonly'});
    await pc.setLocalDescription(await pc.createOffer());
    const endpoint = base + '/whep';
    const post = await fetch(endpoint, {
      method: 'POST', headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp,
    });
    const r = {post: post.status, etag: post.headers.get('ETag')};
    const session = new URL(post.headers.get('Location'), endpoint).href;
    await post.text();
    const frag = 'a=ice-ufrag:abcd\\r\\na=ice-pwd:0123456789012345678901\\r\\n' +
      'm=video 9 UDP/TLS/RTP/SAVPF 0\\r\\na=mid:0\\r\\n' +
      'a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\\r\\n';
    const trickle = {'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': '*'};
    r.patch = (await fetch(session, {method: 'PATCH', headers: trickle, body: frag})).status;
    r.del = (await fetch(session, {method: 'DELETE'})).status;
    const nosuch = base + '/whep/nosuch';
    const gone = await fetch(nosuch, {method: 'PATCH', headers: trickle, body: frag});
    r.unknown = gone.status;
    r.unknownBody = await gone.text();
    pc.close();
    return r;
  });
  await step('cameraStreamer', async () => {
    // Fluidd's application/json makes Chromium send a preflight first.
    const post = (body) => fetch(base + '/webrtc', {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body),
    });
    const got = await post({type: 'request', iceServers: [], keepAlive: true});
    const offer = await got.json();
    const pc = new RTCPeerConnection({iceServers: []});
    await pc.setRemoteDescription({type: 'offer', sdp: offer.sdp});
    await pc.setLocalDescription(await pc.createAnswer());
    const answer = await post({type: 'answer', id: offer.id, sdp: pc.localDescription.sdp});
    const r = {request: got.status, type: offer.type, answer: answer.status};
    r.answerBody = await answer.json();
    pc.close();
    return r;
  });
  await step('status', async () => {
    const r = await fetch(base + '/status');
    return {status: r.status, hasCameras: 'cameras' in (await r.json())};
  });
  await step('snapshot', async () => {
    const img = new Image();
    img.crossOrigin = 'anonymous';
    await new Promise((ok, fail) => {
      img.onload = ok;
      img.onerror = () => fail(new Error('the snapshot did not load'));
      img.src = base + '/snapshot?t=' + Date.now();
    });
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const pixel = ctx.getImageData(0, 0, 1, 1).data;  // throws on a tainted canvas
    return {width: img.naturalWidth, alpha: pixel[3]};
  });
  await step('mjpeg', async () => {
    // Mainsail's worker: fetch in CORS mode, find the JPEG start bytes in the chunks.
    const r = await fetch(base + '/stream', {mode: 'cors'});
    const reader = r.body.getReader();
    let seen = 0;
    let jpeg = false;
    while (!jpeg && seen < 4000000) {
      const {value, done} = await reader.read();
      if (done) break;
      seen += value.length;
      for (let i = 0; i + 1 < value.length; i++) {
        if (value[i] === 0xff && value[i + 1] === 0xd8) { jpeg = true; break; }
      }
    }
    await reader.cancel();
    return {status: r.status, type: r.headers.get('Content-Type'), jpeg};
  });
  return out;
}"""


def test_every_exchange_works_from_a_page_on_another_origin(
    stack: Stack, browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins: the WHEP session resource's preflight allowed only GET, POST, OPTIONS and
    Content-Type, so Chromium refused the trickle PATCH with If-Match and the DELETE
    ("TypeError: Failed to fetch"), and the 404 of an unknown session was unreadable."""
    page = browser.open(other_origin.url("/"))
    out: dict[str, Any] = page.eval(f"({CROSS_ORIGIN_JS})({stack.base!r})", timeout=40)
    whep = out["whep"]
    assert whep == {**whep, "post": 201, "patch": 204, "del": 200, "unknown": 404}, out
    assert whep["etag"] and "no session" in whep["unknownBody"], out
    streamer = out["cameraStreamer"]
    assert streamer == {"request": 200, "type": "offer", "answer": 200, "answerBody": {}}, out
    assert out["status"] == {"status": 200, "hasCameras": True}, out
    assert out["snapshot"] == {"width": 640, "alpha": 255}, out
    mjpeg = out["mjpeg"]
    assert mjpeg["status"] == 200 and mjpeg["jpeg"], out
    assert mjpeg["type"].startswith("multipart/x-mixed-replace"), out
