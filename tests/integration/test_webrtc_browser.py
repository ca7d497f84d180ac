"""WebRTC in a real headless Chromium: the viewer page plays H.264 over WHEP, and pages that
speak exactly what Mainsail sends (camera-streamer's JSON exchange, and WHEP with trickle
PATCH) decode frames. Each scenario reports what ``getStats()`` saw."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from tests.integration.browser import Browser, Page
from tests.integration.conftest import Stack

PLAYER = "document.querySelector('titanium-video')"

# Prepended to every scenario: the inbound video figures of a peer connection, with the
# codec read through the inbound-rtp's codecId, as the issue asks.
INBOUND_VIDEO_JS = """
async function inboundVideo(pc) {
  const report = await pc.getStats();
  let inbound = null;
  report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') inbound = s; });
  if (!inbound) return {framesDecoded: 0, width: 0, height: 0, codec: null};
  const codec = inbound.codecId ? report.get(inbound.codecId) : null;
  return {
    framesDecoded: inbound.framesDecoded ?? 0,
    width: inbound.frameWidth ?? 0,
    height: inbound.frameHeight ?? 0,
    codec: codec ? codec.mimeType : null,
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
"""

# Mainsail's webrtc-camerastreamer exchange (WebrtcCameraStreamer.vue), step by step.
# (url, seconds) → {framesDecoded, width, height, codec, pings, candidatesPosted, …}
CAMERA_STREAMER_JS = """async (url, seconds) => {
  const result = {pings: 0, candidatesPosted: 0, candidateErrors: []};
  // The request goes without a Content-Type header of its own, as Mainsail sends it: the
  // browser labels the string body text/plain;charset=UTF-8 (and sends no CORS preflight).
  const res = await fetch(url, {
    method: 'POST',
    body: JSON.stringify({type: 'request', iceServers: [], keepAlive: true}),
  });
  if (res.status !== 200) throw new Error(`request answered ${res.status}: ${await res.text()}`);
  const offer = await res.json();
  if (offer.type !== 'offer' || !offer.id || !offer.sdp) {
    throw new Error('not an offer: ' + JSON.stringify(offer).slice(0, 300));
  }
  result.offerHadCandidates = /a=candidate:/.test(offer.sdp);
  const post = (body) => fetch(url, {
    method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify(body),
  });
  const pc = new RTCPeerConnection({iceServers: offer.iceServers ?? []});
  pc.addTransceiver('video', {direction: 'recvonly'});  // Mainsail does this too
  pc.ondatachannel = (e) => {
    if (e.channel.label !== 'keepalive') return;
    e.channel.onmessage = (m) => {
      if (m.data === 'ping') { result.pings++; e.channel.send('pong'); }
    };
  };
  const sent = [];
  pc.onicecandidate = (e) => {
    if (!e.candidate) return;
    // RTCIceCandidate.toJSON: {candidate, sdpMid, sdpMLineIndex, usernameFragment}. These
    // may reach the server before the answer does.
    const posted = post({type: 'remote_candidate', id: offer.id, candidates: [e.candidate]});
    sent.push(posted.then((r) => {
      result.candidatesPosted++;
      if (r.status !== 200) result.candidateErrors.push(r.status);
    }));
  };
  await pc.setRemoteDescription({type: 'offer', sdp: offer.sdp});
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  const reply = await post({type: 'answer', id: offer.id, sdp: pc.localDescription.sdp});
  if (reply.status !== 200) {
    throw new Error(`answer answered ${reply.status}: ${await reply.text()}`);
  }
  result.answerReply = await reply.json();
  await sleep(seconds * 1000);
  await Promise.all(sent);
  Object.assign(result, await inboundVideo(pc), {connectionState: pc.connectionState});
  pc.close();
  return result;
}"""

# WHEP with trickle PATCH, as Mainsail's webrtc-mediamtx (WebrtcMediaMTX.vue) does it: the
# offer is POSTed before setLocalDescription, so it carries no candidate and every local
# candidate reaches the server by PATCH. flavour 'mainsail' offers sendrecv video + audio,
# 'fluidd' recvonly video.
# (url, seconds, flavour) → {framesDecoded, width, height, codec, patches, deleteStatus, …}
WHEP_TRICKLE_JS = """async (url, seconds, flavour) => {
  const result = {patches: []};
  const options = await fetch(url, {method: 'OPTIONS'});
  result.optionsStatus = options.status;
  const links = options.headers.get('Link');
  const iceServers = links ? links.split(', ').map((l) => ({urls: [l.match(/^<(.+?)>/)[1]]})) : [];
  const pc = new RTCPeerConnection({iceServers});
  const direction = flavour === 'fluidd' ? 'recvonly' : 'sendrecv';
  pc.addTransceiver('video', {direction});
  if (flavour !== 'fluidd') pc.addTransceiver('audio', {direction});
  const offer = await pc.createOffer();
  const res = await fetch(url, {
    method: 'POST', headers: {'Content-Type': 'application/sdp'}, body: offer.sdp,
  });
  if (res.status !== 201) throw new Error(`WHEP POST answered ${res.status}: ${await res.text()}`);
  const etag = res.headers.get('ETag');
  const session = new URL(res.headers.get('Location'), res.url).href;
  Object.assign(result, {etag, session});
  const medias = offer.sdp.split('\\r\\n').filter((l) => l.startsWith('m=')).map((l) => l.slice(2));
  const ufrag = offer.sdp.match(/a=ice-ufrag:(.*)/)[1].trim();
  const pwd = offer.sdp.match(/a=ice-pwd:(.*)/)[1].trim();
  let queued = [];
  let ready = false;
  let patching = Promise.resolve();
  const flush = () => {
    if (!ready || !queued.length) return;
    const batch = queued;
    queued = [];
    let frag = `a=ice-ufrag:${ufrag}\\r\\na=ice-pwd:${pwd}\\r\\n`;
    medias.forEach((media, index) => {
      const mine = batch.filter((c) => c.sdpMLineIndex === index);
      if (!mine.length) return;
      frag += `m=${media}\\r\\na=mid:${index}\\r\\n`;
      for (const c of mine) frag += `a=${c.candidate}\\r\\n`;
    });
    patching = patching.then(() => fetch(session, {
      method: 'PATCH',
      headers: {'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': etag},
      body: frag,
    })).then((r) => result.patches.push({status: r.status, candidates: batch.length}));
  };
  pc.onicecandidate = (e) => { if (e.candidate) { queued.push(e.candidate); flush(); } };
  await pc.setLocalDescription(offer);
  await pc.setRemoteDescription({type: 'answer', sdp: await res.text()});
  ready = true;
  flush();
  await sleep(seconds * 1000);
  await patching;
  Object.assign(result, await inboundVideo(pc), {connectionState: pc.connectionState});
  pc.close();
  result.deleteStatus = (await fetch(session, {method: 'DELETE'})).status;
  return result;
}"""


def run_scenario(page: Page, scenario: str, *args: Any, timeout: float = 40) -> Any:
    """Run one of the scenario functions above in ``page`` with JSON arguments."""
    call = ", ".join(json.dumps(a) for a in args)
    return page.eval(
        f"(async () => {{ {INBOUND_VIDEO_JS}\nreturn await ({scenario})({call}); }})()", timeout
    )


def test_page_plays_webrtc_h264_with_the_latency_overlay(stack: Stack, browser: Browser) -> None:
    page = browser.open(stack.url("/"))
    page.wait_for(f"{PLAYER}?.stats.mode === 'webrtc'", 25)
    read = (
        f"(async () => {{ {INBOUND_VIDEO_JS}\nreturn inboundVideo({PLAYER}.peerConnection); }})()"
    )
    before = page.eval(read)
    time.sleep(10)
    after = page.eval(read)
    report = f"{before} → {after}\n{page.diagnostics()}"
    assert after["framesDecoded"] - before["framesDecoded"] >= 60, report
    assert (after["width"], after["height"]) == (640, 480), report
    assert after["codec"] == "video/H264", report
    stats = page.wait_for(f"typeof {PLAYER}.stats.latencyMs === 'number' && {PLAYER}.stats", 5)
    assert stats["mode"] == "webrtc" and stats["codec"] == "H264", stats
    assert 0 <= stats["latencyMs"] < 1000, stats
    assert stats["bitrateKbps"] and stats["bitrateKbps"] > 0, stats


def test_mainsail_camera_streamer_exchange_decodes_frames(stack: Stack, browser: Browser) -> None:
    page = browser.open(stack.url("/status"))  # any page of the server's origin
    got = run_scenario(page, CAMERA_STREAMER_JS, "webrtc", 10)
    report = f"{got}\n{page.diagnostics()}"
    assert got["offerHadCandidates"], report
    assert got["answerReply"] == {}, report
    assert got["candidatesPosted"] >= 1 and not got["candidateErrors"], report
    assert got["pings"] >= 5, report
    assert got["framesDecoded"] >= 60, report
    assert (got["width"], got["height"]) == (640, 480), report
    assert got["codec"] == "video/H264", report


def test_whep_with_trickle_patch_decodes_frames(stack: Stack, browser: Browser) -> None:
    page = browser.open(stack.url("/status"))
    got = run_scenario(page, WHEP_TRICKLE_JS, "whep", 10, "mainsail")
    report = f"{got}\n{page.diagnostics()}"
    assert got["optionsStatus"] == 204, report
    assert got["etag"] and got["patches"], report
    assert all(p["status"] == 204 for p in got["patches"]), report
    assert got["framesDecoded"] >= 60, report
    assert (got["width"], got["height"]) == (640, 480), report
    assert got["codec"] == "video/H264", report
    assert got["deleteStatus"] in (200, 204), report


READ_PLAYER = f"""(async () => {{ {INBOUND_VIDEO_JS}
return inboundVideo({PLAYER}.peerConnection); }})()"""


def test_five_browser_viewers_all_decode_and_the_encoder_runs_once(
    stack: Stack, browser: Browser
) -> None:
    pages = [browser.open(stack.url("/")) for _ in range(5)]
    for page in pages:
        page.wait_for(f"{PLAYER}?.stats.mode === 'webrtc'", 30)
    time.sleep(1.5)  # counters are published once a second
    before = stack.status()["cameras"]["cam0"]
    start = [page.eval(READ_PLAYER)["framesDecoded"] for page in pages]
    time.sleep(10)
    decoded = [
        page.eval(READ_PLAYER)["framesDecoded"] - n for page, n in zip(pages, start, strict=True)
    ]
    time.sleep(1.5)
    after = stack.status()["cameras"]["cam0"]
    assert after["webrtc_viewers"] == 5
    assert all(n >= 60 for n in decoded), (decoded, pages[0].diagnostics())
    captured = after["frames"] - before["frames"]
    encoded = after["encoder"]["frames_out"] - before["encoder"]["frames_out"]
    # One encode per captured frame for all five (not five per frame); counters are up to
    # a second (30 frames) stale at either end.
    assert 0.8 * min(decoded) <= encoded <= captured + 35, (encoded, captured, decoded)
    assert stack.status()["webrtc"]["aiortc_encodes"] == 0


def test_browser_decodes_again_within_10s_of_an_encoder_sigkill(
    stack: Stack, browser: Browser
) -> None:
    page = browser.open(stack.url("/"))
    page.wait_for(f"{PLAYER}?.stats.mode === 'webrtc'", 30)
    page.wait_for(f"{PLAYER}.stats.framesDecoded > 30", 15)
    pid = stack.status()["services"]["encoder-cam0"]["pid"]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    time.sleep(0.5)  # let frames already in flight arrive
    stalled = page.eval(READ_PLAYER)["framesDecoded"]
    page.wait_for(
        f"(async () => {{ {INBOUND_VIDEO_JS}\n"
        f"return (await inboundVideo({PLAYER}.peerConnection)).framesDecoded > {stalled + 15};"
        " })()",
        12,
        interval=0.25,
    )
    assert time.monotonic() - killed < 10.0, page.diagnostics()
    stack.wait_for(lambda st: st["services"]["encoder-cam0"]["pid"] not in (None, pid), 5)
