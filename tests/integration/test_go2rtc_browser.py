"""Mainsail's and Fluidd's ``webrtc-go2rtc`` players in headless Chromium, on a page of
another origin (as Mainsail on port 80 talks to Titanium on 8080), against a real stack.

Each scenario is the frontend's own code, step by step (Mainsail:
src/components/webcams/streamers/WebrtcGo2rtc.vue with convertUrl from mixins/webcam.ts;
Fluidd: src/components/widgets/camera/services/WebrtcGo2RtcCamera.vue with
buildAbsoluteUrl from mixins/camera.ts), with one change: both configure Google's public
STUN server, which these tests may not reach, so ``iceServers`` is empty."""

from __future__ import annotations

from typing import Any

from tests.integration.browser import Browser, Page
from tests.integration.conftest import Stack
from tests.integration.origin import OtherOrigin
from tests.integration.test_webrtc_browser import INBOUND_VIDEO_JS

# Mainsail's `url` getter and convertUrl, for an absolute stream URL (printerUrl null):
# (streamUrl, enableAudio) → the WebSocket URL it opens.
MAINSAIL_URL_JS = """(streamUrl, enableAudio) => {
  const url = new URL(streamUrl, 'http://dummy');
  if (url.pathname.endsWith('/api/webrtc')) {
    url.pathname = url.pathname.slice(0, -'webrtc'.length) + 'ws';
  } else if (!url.pathname.endsWith('/api/ws')) {
    url.pathname = url.pathname.replace(/[^/]*$/, '') + 'api/ws';
  }
  const media = ['video'];
  if (enableAudio) media.push('audio');
  url.searchParams.set('media', media.join('+'));
  const lower = streamUrl.toLowerCase();
  const isAbsolute = lower.startsWith('http://') || lower.startsWith('https://');
  const outputUrl = isAbsolute ? url.toString() : url.pathname + url.search;
  let converted = new URL(outputUrl, document.URL);
  if (outputUrl.startsWith('http') || outputUrl.startsWith('://')) converted = new URL(outputUrl);
  const wsUrl = new URL(decodeURIComponent(converted.toString()));
  wsUrl.protocol = 'ws:';
  return wsUrl.toString();
}"""

# Fluidd's loadStream: (streamUrl) → the WebSocket URL it opens.
FLUIDD_URL_JS = """(streamUrl) => {
  const url = new URL(streamUrl, new URL(document.URL).origin);
  const socketUrl = new URL('api/ws' + url.search, url);
  socketUrl.protocol = socketUrl.protocol === 'https:' ? 'wss:' : 'ws:';
  return socketUrl.toString();
}"""

# Mainsail's start() / onWebSocketOpen / onWebSocketMessage. (wsUrl, seconds) → figures.
MAINSAIL_JS = """async (wsUrl, seconds) => {
  const result = {messages: [], candidatesSent: 0, states: []};
  const pc = new RTCPeerConnection({iceServers: []});
  const localTracks = [];
  ['video', 'audio'].forEach((kind) => {
    const track = pc.addTransceiver(kind, {direction: 'recvonly'}).receiver.track;
    if (track) localTracks.push(track);
  });
  const video = document.createElement('video');
  video.muted = true;
  document.body.appendChild(video);
  video.srcObject = new MediaStream(localTracks);
  video.play().catch(() => {});
  const ws = new WebSocket(wsUrl);
  ws.addEventListener('open', () => {
    pc.addEventListener('icecandidate', (ev) => {
      if (!ev.candidate) return;
      ws.send(JSON.stringify({type: 'webrtc/candidate', value: ev.candidate.candidate}));
      result.candidatesSent++;
    });
    pc.addEventListener('connectionstatechange', () => result.states.push(pc.connectionState));
    pc.createOffer()
      .then((offer) => pc.setLocalDescription(offer))
      .then(() => ws.send(JSON.stringify({type: 'webrtc/offer', value: pc.localDescription.sdp})));
  });
  ws.addEventListener('message', (ev) => {
    const msg = JSON.parse(ev.data);
    result.messages.push(msg.type === 'error' ? msg : msg.type);
    if (msg.type === 'webrtc/candidate') {
      pc.addIceCandidate({candidate: msg.value, sdpMid: '0'});
    } else if (msg.type === 'webrtc/answer') {
      pc.setRemoteDescription({type: 'answer', sdp: msg.value});
    }
  });
  ws.addEventListener('close', (ev) => { result.closed = {clean: ev.wasClean, code: ev.code}; });
  await sleep(seconds * 1000);
  Object.assign(result, await inboundVideo(pc), {connectionState: pc.connectionState});
  pc.close();
  ws.close();
  return result;
}"""

# Fluidd's loadStream / onWebSocketOpen / onWebSocketMessage. (wsUrl, seconds) → figures.
FLUIDD_JS = """async (wsUrl, seconds) => {
  const result = {messages: [], candidatesSent: 0, states: []};
  let pc = null;
  const video = document.createElement('video');
  video.muted = true;
  document.body.appendChild(video);
  const ws = new WebSocket(wsUrl);
  ws.binaryType = 'arraybuffer';
  ws.onopen = async () => {
    pc = new RTCPeerConnection({bundlePolicy: 'max-bundle', iceServers: [],
                                sdpSemantics: 'unified-plan'});
    pc.onicecandidate = (ev) => {
      if (!ev.candidate) return;
      ws.send(JSON.stringify({type: 'webrtc/candidate', value: ev.candidate.toJSON().candidate}));
      result.candidatesSent++;
    };
    pc.onconnectionstatechange = () => {
      result.states.push(pc.connectionState);
      if (pc.connectionState === 'connected') {
        const tracks = pc.getTransceivers()
          .filter((tr) => tr.direction === 'recvonly').map((tr) => tr.receiver.track);
        video.srcObject = new MediaStream(tracks);
        video.play().catch(() => {});
      }
    };
    pc.addTransceiver('video', {direction: 'recvonly'});
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    ws.send(JSON.stringify({type: 'webrtc/offer', value: offer.sdp}));
  };
  ws.onmessage = async (ev) => {
    const msg = JSON.parse(ev.data);
    result.messages.push(msg.type === 'error' ? msg : msg.type);
    switch (msg.type) {
      case 'webrtc/candidate':
        try { await pc.addIceCandidate({candidate: msg.value, sdpMid: '0'}); }
        catch (e) { result.candidateError = String(e); }
        break;
      case 'webrtc/answer':
        pc.setRemoteDescription({type: 'answer', sdp: msg.value});
        break;
      case 'error':
        pc.close();
    }
  };
  ws.onclose = (ev) => { result.closed = {clean: ev.wasClean, code: ev.code}; };
  await sleep(seconds * 1000);
  if (pc) Object.assign(result, await inboundVideo(pc), {connectionState: pc.connectionState});
  if (pc) pc.close();
  ws.close();
  return result;
}"""


def _run(page: Page, url_js: str, url_args: list[Any], scenario: str) -> dict[str, Any]:
    """The frontend's URL from ``url_args``, then its exchange for 6 s on that URL."""
    args = ", ".join(repr(a) if isinstance(a, str) else str(a).lower() for a in url_args)
    js = (
        f"(async () => {{ {INBOUND_VIDEO_JS}\nconst wsUrl = ({url_js})({args});\n"
        f"const got = await ({scenario})(wsUrl, 6);\ngot.wsUrl = wsUrl;\nreturn got; }})()"
    )
    result: dict[str, Any] = page.eval(js, 40)
    return result


def _assert_played(got: dict[str, Any], page: Page) -> None:
    report = f"{got}\n{page.diagnostics()}"
    assert got["messages"] and got["messages"][0] == "webrtc/answer", report
    assert not [m for m in got["messages"] if isinstance(m, dict)], report  # no error
    assert got["candidatesSent"] >= 1, report
    assert got["framesDecoded"] >= 60, report
    assert (got["width"], got["height"]) == (640, 480) and got["codec"] == "video/H264", report
    assert "closed" not in got, report  # the socket held until the player closed it


def test_mainsail_go2rtc_player_decodes_frames(
    stack: Stack, browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins: Mainsail's webrtc-go2rtc rewrote the stream URL ``<base>/?src=cam0`` to
    ``<base>/api/ws?src=cam0&media=video+audio``, which was 404 (no go2rtc API): nothing
    played. Its offer (video and audio recvonly, candidates trickled as bare strings that
    may precede the answer) now decodes H.264."""
    page = browser.open(other_origin.url("/"))
    got = _run(page, MAINSAIL_URL_JS, [stack.url("/?src=cam0"), True], MAINSAIL_JS)
    assert got["wsUrl"] == stack.url("/api/ws?src=cam0&media=video+audio").replace(
        "http:", "ws:"
    ), got
    _assert_played(got, page)


def test_fluidd_go2rtc_player_decodes_frames(
    stack: Stack, browser: Browser, other_origin: OtherOrigin
) -> None:
    """Pins: Fluidd's webrtc-go2rtc resolved ``api/ws`` against the stream URL
    ``<base>/stream.html?src=cam0`` to ``<base>/api/ws?src=cam0``, which was 404: nothing
    played. Its offer (video recvonly, max-bundle) now decodes H.264."""
    page = browser.open(other_origin.url("/"))
    stream_url = stack.url("/stream.html?src=cam0")
    got = _run(page, FLUIDD_URL_JS, [stream_url], FLUIDD_JS)
    assert got["wsUrl"] == stack.url("/api/ws?src=cam0").replace("http:", "ws:"), got
    _assert_played(got, page)
    # The same URL rewriting from the other stream URL form lands on the same socket.
    check = f"({FLUIDD_URL_JS})({stack.url('/?src=cam0')!r})"
    assert page.eval(check) == got["wsUrl"]
    mainsail = f"({MAINSAIL_URL_JS})({stream_url!r}, false)"
    assert page.eval(mainsail) == got["wsUrl"] + "&media=video"
