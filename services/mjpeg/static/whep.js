// A WHEP client (PROTOCOLS.md "WHEP"): offer, 201 + Location, trickle PATCH, DELETE; and
// what the viewer reads from its peer connection's getStats(): the inbound video figures and
// the route the video takes (the selected ICE candidate pair).
// (The front door serves only the modules listed in services/mjpeg/page.py.)


/** A WHEP request answered with something other than 201. */
export class WhepError extends Error {
  constructor(status, text) {
    super(`WHEP POST answered ${status}${text ? ": " + text.trim().slice(0, 200) : ""}`);
    this.status = status;
  }

  /** The server has no WebRTC at all: retrying will not help, MJPEG is the answer. */
  get unsupported() {
    return [404, 405, 501].includes(this.status);
  }
}

/** ICE servers from `Link: <stun:…>; rel="ice-server"; username="…"; credential="…"` headers. */
export function parseLinkIceServers(header) {
  if (!header) return [];
  const servers = [];
  // Several links arrive comma-joined; a comma may also sit inside a quoted credential.
  for (const link of header.match(/<[^>]*>(?:\s*;\s*[^;,=]+(?:=(?:"[^"]*"|[^;,]*))?)*/g) ?? []) {
    const url = link.match(/^<([^>]*)>/)[1];
    const params = {};
    for (const m of link.matchAll(/;\s*([^;,=\s]+)\s*(?:=\s*(?:"([^"]*)"|([^;,]*)))?/g)) {
      params[m[1].toLowerCase()] = m[2] ?? m[3] ?? "";
    }
    if (params.rel !== "ice-server") continue;
    const server = { urls: [url] };
    if (params.username !== undefined) server.username = params.username;
    if (params.credential !== undefined) server.credential = params.credential;
    servers.push(server);
  }
  return servers;
}

/** ice-ufrag, ice-pwd and the m= lines by mid of an SDP, for trickle fragments. */
export function parseOffer(sdp) {
  const out = { ufrag: "", pwd: "", medias: [] };
  let media = null;
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith("m=")) {
      media = { line, mid: String(out.medias.length) };
      out.medias.push(media);
    } else if (line.startsWith("a=mid:") && media) {
      media.mid = line.slice(6);
    } else if (line.startsWith("a=ice-ufrag:") && !out.ufrag) {
      out.ufrag = line.slice(12);
    } else if (line.startsWith("a=ice-pwd:") && !out.pwd) {
      out.pwd = line.slice(10);
    }
  }
  return out;
}

/**
 * An application/trickle-ice-sdpfrag body (RFC 8840) for `candidates`: the offer's ICE
 * credentials, then per media section its m= line, a=mid and a=candidate lines. This is the
 * shape MediaMTX (and so Mainsail's and Fluidd's webrtc-mediamtx) sends and accepts.
 */
export function sdpFragment(offer, candidates) {
  let frag = `a=ice-ufrag:${offer.ufrag}\r\na=ice-pwd:${offer.pwd}\r\n`;
  offer.medias.forEach((media, index) => {
    const mine = candidates.filter((c) =>
      c.sdpMid != null ? c.sdpMid === media.mid : c.sdpMLineIndex === index,
    );
    if (!mine.length) return;
    frag += `${media.line}\r\na=mid:${media.mid}\r\n`;
    for (const c of mine) frag += `a=${c.candidate}\r\n`;
  });
  return frag;
}

/** Order H.264 first, constrained baseline with packetization-mode=1 at the very front. */
export function preferH264(transceiver) {
  if (!transceiver.setCodecPreferences || !RTCRtpReceiver.getCapabilities) return;
  const codecs = RTCRtpReceiver.getCapabilities("video")?.codecs ?? [];
  // aiortc offers H.264 only as profile-level-id 42001f/42e01f; Titanium encodes constrained
  // baseline. Other codecs stay in the list (behind) so the offer is never empty.
  const rank = (c) => {
    if (c.mimeType.toLowerCase() !== "video/h264") return 4;
    const fmtp = c.sdpFmtpLine ?? "";
    if (!/packetization-mode=1/.test(fmtp)) return 3;
    if (/profile-level-id=42e0/i.test(fmtp)) return 0;
    if (/profile-level-id=4200/i.test(fmtp)) return 1;
    return 2;
  };
  const sorted = codecs.map((c, i) => [rank(c), i, c]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (!sorted.length || sorted[0][0] === 4) return; // no H.264 here: let the server decide
  try {
    transceiver.setCodecPreferences(sorted.map((x) => x[2]));
  } catch (e) {
    console.warn("titanium-video: setCodecPreferences failed", e);
  }
}

/** One WHEP session: POST the offer, trickle candidates with PATCH, DELETE at the end. */
export class WhepSession {
  constructor(url, { onTrack, onFailed, log, iceTransportPolicy = "all", keepQuery = [] }) {
    this.url = url;
    this.iceTransportPolicy = iceTransportPolicy;
    this.keepQuery = keepQuery;
    this.onTrack = onTrack;
    this.onFailed = onFailed;
    this.log = log;
    this.pc = null;
    this.sessionUrl = null;
    this.etag = null;
    this.offer = null;
    this.queued = [];
    this.patching = Promise.resolve();
    this.trickle = true;
    this.closed = false;
    this.disconnectTimer = null;
  }

  async start() {
    const iceServers = await this.iceServers();
    const pc = (this.pc = new RTCPeerConnection({
      iceServers,
      iceTransportPolicy: this.iceTransportPolicy,
    }));
    const transceiver = pc.addTransceiver("video", { direction: "recvonly" });
    preferH264(transceiver);
    pc.ontrack = (e) => this.onTrack(e.streams[0] ?? new MediaStream([e.track]));
    pc.onicecandidate = (e) => {
      // The null candidate (end of gathering) is not sent: an a=end-of-candidates line is
      // optional in RFC 8840 and servers answer it differently.
      if (e.candidate && e.candidate.candidate) this.queueCandidate(e.candidate);
    };
    pc.onconnectionstatechange = () => this.onConnectionState();

    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.offer = parseOffer(offer.sdp);
    // The offer goes out at once, without waiting for ICE gathering: candidates follow by
    // PATCH. Those gathered before the session URL is known wait in `queued`.
    const res = await fetch(this.url, {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: offer.sdp,
    });
    if (res.status !== 201) throw new WhepError(res.status, await res.text().catch(() => ""));
    const sessionPath = res.headers.get("Location");
    if (!sessionPath) throw new Error("WHEP 201 without a Location header");
    // Relative to the POST URL: the server cannot know the prefix nginx put in front of it.
    this.sessionUrl = new URL(sessionPath, res.url || this.url);
    // The Mirage proxy authenticates every request by ?token=: a session URL that came back
    // without it would have its PATCH and DELETE refused.
    const asked = new URL(this.url).searchParams;
    for (const name of this.keepQuery) {
      if (asked.has(name) && !this.sessionUrl.searchParams.has(name)) {
        this.sessionUrl.searchParams.set(name, asked.get(name));
      }
    }
    if (this.closed) return this.deleteSession(); // stopped while the POST was in flight
    // MediaMTX 1.0 sent "E-Tag"; the standard header is ETag.
    this.etag = res.headers.get("ETag") ?? res.headers.get("E-Tag");
    const answer = await res.text();
    if (this.closed) return;
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    this.flushCandidates();
  }

  async iceServers() {
    // OPTIONS answers the ICE servers as Link headers. A server that does not answer it is
    // still usable on a LAN, where no STUN/TURN is needed.
    try {
      const res = await fetch(this.url, { method: "OPTIONS" });
      return parseLinkIceServers(res.headers.get("Link"));
    } catch (e) {
      this.log("OPTIONS failed, no ICE servers", e);
      return [];
    }
  }

  queueCandidate(candidate) {
    this.queued.push(candidate);
    if (this.sessionUrl && this.pc?.remoteDescription) {
      // Coalesce the burst gathering produces into one PATCH.
      queueMicrotask(() => this.flushCandidates());
    }
  }

  flushCandidates() {
    if (!this.trickle || this.closed || !this.queued.length || !this.sessionUrl) return;
    const batch = this.queued.splice(0);
    // PATCHes go one after the other, in gathering order.
    this.patching = this.patching.then(() => this.patch(batch));
  }

  async patch(candidates) {
    if (this.closed) return;
    const headers = { "Content-Type": "application/trickle-ice-sdpfrag" };
    if (this.etag) headers["If-Match"] = this.etag;
    try {
      const res = await fetch(this.sessionUrl, {
        method: "PATCH",
        headers,
        body: sdpFragment(this.offer, candidates),
      });
      if (res.status === 204 || res.status === 200) return;
      if (res.status === 404) {
        // The server forgot the session (it restarted, or timed us out): start over.
        this.fail("the WHEP session is gone (PATCH 404)");
        return;
      }
      // A server without trickle support still connects through its own candidates and
      // the peer-reflexive ones our checks create: stop trickling, keep the session.
      this.trickle = false;
      this.log(`PATCH answered ${res.status}; not trickling further`);
    } catch (e) {
      this.log("PATCH failed", e);
    }
  }

  onConnectionState() {
    const state = this.pc?.connectionState;
    if (state === "failed") {
      this.fail("ICE/DTLS failed");
    } else if (state === "disconnected") {
      // "disconnected" often heals by itself within seconds (a lost burst, Wi-Fi roaming).
      clearTimeout(this.disconnectTimer);
      this.disconnectTimer = setTimeout(() => {
        if (this.pc?.connectionState === "disconnected") this.fail("disconnected for 5 s");
      }, 5000);
    } else if (state === "connected") {
      clearTimeout(this.disconnectTimer);
    }
  }

  fail(reason) {
    if (this.closed) return;
    this.onFailed(reason);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.disconnectTimer);
    this.pc?.close();
    this.deleteSession();
  }

  deleteSession() {
    if (!this.sessionUrl) return;
    // keepalive: the DELETE must survive the page being unloaded.
    fetch(this.sessionUrl, { method: "DELETE", keepalive: true }).catch(() => {});
    this.sessionUrl = null;
  }
}

// ---- getStats() ----------------------------------------------------------------------

/** The inbound video RTP figures of a stats report, with the codec name from its codec stats. */
export function inboundVideoStats(report) {
  let inbound = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && (s.kind ?? s.mediaType) === "video") inbound = s;
  });
  if (!inbound) return null;
  const codec = inbound.codecId ? report.get(inbound.codecId) : null;
  return {
    framesDecoded: inbound.framesDecoded ?? 0,
    bytesReceived: inbound.bytesReceived ?? 0,
    frameWidth: inbound.frameWidth,
    frameHeight: inbound.frameHeight,
    codec: codec?.mimeType?.replace(/^video\//i, "") ?? null,
  };
}

/**
 * How the video arrives, from the selected candidate pair of a stats report:
 * {kind: 'direct'|'nat'|'relay', local, remote, protocol, relayProtocol}, or null before
 * a pair is selected. local and remote are candidate types (host, srflx, prflx, relay);
 * protocol is the local candidate's (for a relay: between the relay and the peer);
 * relayProtocol is how this browser reaches its TURN server (udp, tcp or tls).
 */
export function selectedRoute(report) {
  let pair = null;
  report.forEach((s) => {
    // The transport names its selected pair; Firefox instead flags the pair itself.
    if (s.type === "transport" && s.selectedCandidatePairId) {
      pair = report.get(s.selectedCandidatePairId) ?? pair;
    }
  });
  if (!pair) {
    report.forEach((s) => {
      if (s.type === "candidate-pair" && s.selected) pair = s;
    });
  }
  if (!pair) return null;
  const local = report.get(pair.localCandidateId);
  const remote = report.get(pair.remoteCandidateId);
  if (!local || !remote) return null;
  const types = [local.candidateType, remote.candidateType];
  let kind = "direct";
  if (types.includes("relay")) kind = "relay";
  else if (types.includes("srflx") || types.includes("prflx")) kind = "nat";
  return {
    kind,
    local: local.candidateType ?? null,
    remote: remote.candidateType ?? null,
    protocol: local.protocol ?? null,
    relayProtocol: local.relayProtocol ?? null,
  };
}

/** The overlay's words for a route. */
export function routeLabel(route) {
  if (!route) return "";
  if (route.kind === "direct") return "direct";
  if (route.kind === "nat") return "P2P through NAT";
  // Only the side that allocated the relay knows the transport to its TURN server.
  if (route.relayProtocol) return `relayed (TURN over ${route.relayProtocol})`;
  return "relayed (TURN, by the camera's side)";
}
