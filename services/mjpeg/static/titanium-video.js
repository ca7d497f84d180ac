// <titanium-video>: one Titanium camera in a page. WebRTC over WHEP first, MJPEG in an
// <img> as the fallback, reconnecting with backoff, and a small overlay with the mode, fps,
// bitrate and — when the source is Titanium's test pattern — the live capture-to-screen
// latency read from the timecode strip drawn into every frame (common/timecode.py).
//
//   <script type="module" src="titanium-video.js"></script>
//   <titanium-video camera="cam0" mode="auto"></titanium-video>
//
// Attributes: camera (id; the server's first camera when absent), quality (passed to the
// server as ?quality=), src (base URL of the Titanium front door; default: this page's own
// directory), mode (auto | webrtc | mjpeg).
// For tests and tools: element.stats → {mode, state, framesDecoded, fps, bitrateKbps,
// latencyMs, width, height, codec, error}, element.latencySamples (recent latencies in ms),
// element.peerConnection (the live RTCPeerConnection in WebRTC mode), element.reconnect().
//
// Every URL is relative: nginx serves Titanium under prefixes such as /webcam/ that the page
// cannot know.

// ---- Timecode strip (the reader of common/timecode.py, byte for byte) ----------------------

const SYNC = 0b10110010;
const COLS = 32;
const ROWS = 2;
const BITS = COLS * ROWS;

/** CRC-8/ATM (poly 0x07) of a byte array. */
export function crc8(bytes) {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let i = 0; i < 8; i++) {
      crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
  }
  return crc;
}

/** The region of a frame `width` pixels wide that holds the strip and its grey margin. */
export function stripSize(width) {
  const cell = width / 80;
  return { cell, w: Math.round(cell * (COLS + 2)), h: Math.round(cell * (ROWS + 2)) };
}

/**
 * The capture time (ms since the epoch) in RGBA pixels of the strip region, or null when
 * they hold no valid strip. `stride` is the pixel width of `rgba`, `frameWidth` the width
 * of the whole frame (the cell size is a fraction of it).
 */
export function decodeStrip(rgba, stride, frameWidth) {
  const c = frameWidth / 80;
  const height = rgba.length / 4 / stride;
  if (c < 2 || c * (ROWS + 2) > height + 1) return null;
  // Sample the middle half of each cell, away from the codec's ringing at its edges.
  const q = c / 4;
  const word = new Uint8Array(BITS / 8);
  for (let i = 0; i < BITS; i++) {
    const row = Math.floor(i / COLS);
    const col = i % COLS;
    const xa = c * (col + 1);
    const ya = c * (row + 1);
    const x0 = Math.round(xa + q), x1 = Math.round(xa + 3 * q);
    const y0 = Math.round(ya + q), y1 = Math.round(ya + 3 * q);
    let sum = 0;
    let n = 0;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const p = (y * stride + x) * 4;
        sum += 0.299 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2];
        n++;
      }
    }
    if (n && sum / n > 128) word[i >> 3] |= 0x80 >> (i & 7);
  }
  if (word[0] !== SYNC) return null;
  const payload = word.subarray(1, 7);
  if (crc8(payload) !== word[7]) return null;
  // 48 bits fit a double exactly.
  return payload.reduce((ms, byte) => ms * 256 + byte, 0);
}

/** Reads the strip of <video>/<img> frames through a small canvas. */
class StripReader {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
  }

  /**
   * {ms, checksum} for the frame `source` shows now (`width` × `height` its natural size):
   * ms is the capture time or null; checksum tells frames apart when there is no strip.
   */
  read(source, width, height) {
    if (!width || !height) return null;
    const { w, h } = stripSize(width);
    const sw = Math.min(w, width), sh = Math.min(h, height);
    if (sw < 1 || sh < 1) return null;
    if (this.canvas.width !== sw || this.canvas.height !== sh) {
      this.canvas.width = sw;
      this.canvas.height = sh;
    }
    // Only the strip region, at the source's own scale: drawing the whole frame would cost
    // a full-size copy per frame for 64 bits of information.
    this.ctx.drawImage(source, 0, 0, sw, sh, 0, 0, sw, sh);
    const data = this.ctx.getImageData(0, 0, sw, sh).data;
    let checksum = 0;
    for (let i = 0; i < data.length; i += 7) checksum = (checksum * 31 + data[i]) | 0;
    return { ms: decodeStrip(data, sw, width), checksum };
  }
}

// ---- WHEP client (PROTOCOLS.md "WHEP") --------------------------------------------------

/** A WHEP request answered with something other than 201. */
class WhepError extends Error {
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
function parseOffer(sdp) {
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
function preferH264(transceiver) {
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
class WhepSession {
  constructor(url, { onTrack, onFailed, log }) {
    this.url = url;
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
    const pc = (this.pc = new RTCPeerConnection({ iceServers }));
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

// ---- The element -------------------------------------------------------------------------

const FIRST_FRAME_MS = 5000; // a WebRTC session with no decoded frame by then falls back
const WEBRTC_STALL_MS = 5000; // framesDecoded standing still this long: reconnect
const MJPEG_FIRST_FRAME_MS = 10000;
const MJPEG_STALL_MS = 10000;
const LATENCY_SAMPLES = 1000;

const STYLE = `
  :host { display: inline-block; position: relative; background: #000; line-height: 0;
          min-width: 160px; min-height: 90px; }
  video, img { display: block; max-width: 100%; height: auto; }
  [hidden] { display: none !important; }
  .overlay { position: absolute; left: 6px; bottom: 6px; padding: 2px 6px; border-radius: 3px;
             background: rgba(0, 0, 0, 0.6); color: #eee; line-height: 1.4;
             font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; pointer-events: none; }
`;

class Backoff {
  constructor(first, max) {
    this.first = first;
    this.max = max;
    this.delay = first;
  }

  next() {
    const d = this.delay;
    this.delay = Math.min(this.delay * 2, this.max);
    return d * (0.8 + 0.4 * Math.random()); // jitter: many viewers must not retry in step
  }

  reset() {
    this.delay = this.first;
  }
}

export class TitaniumVideo extends HTMLElement {
  static observedAttributes = ["camera", "quality", "src", "mode"];

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>${STYLE}</style>
      <video muted playsinline autoplay hidden></video>
      <img alt="" hidden>
      <div class="overlay" part="overlay">connecting…</div>`;
    this.video = root.querySelector("video");
    this.img = root.querySelector("img");
    this.overlay = root.querySelector(".overlay");
    this.video.muted = true; // the property, not just the attribute, unlocks autoplay
    this.strip = new StripReader();
    this.latencySamples = [];
    this.stats = this.emptyStats("connecting");
    this.session = null;
    this.generation = 0;
    this.timers = new Set();
    this.webrtcBackoff = new Backoff(2000, 60000);
    this.mjpegBackoff = new Backoff(1000, 30000);
    this.onPageHide = () => this.stop();
    // A page restored from the back/forward cache comes back without its connections.
    this.onPageShow = (e) => e.persisted && this.isConnected && this.start();
  }

  // -- lifecycle

  connectedCallback() {
    window.addEventListener("pagehide", this.onPageHide);
    window.addEventListener("pageshow", this.onPageShow);
    this.start();
  }

  disconnectedCallback() {
    window.removeEventListener("pagehide", this.onPageHide);
    window.removeEventListener("pageshow", this.onPageShow);
    this.stop();
  }

  attributeChangedCallback(name, before, after) {
    if (before !== after && this.isConnected && this.generation) this.reconnect();
  }

  /** Drop the current connection and start over, WebRTC first again. */
  reconnect() {
    this.stop();
    this.webrtcBackoff.reset();
    this.mjpegBackoff.reset();
    this.start();
  }

  /** The live RTCPeerConnection while playing (or trying) WebRTC, else null. */
  get peerConnection() {
    return this.session?.pc ?? null;
  }

  // -- URLs

  get mode() {
    const mode = (this.getAttribute("mode") || "auto").toLowerCase();
    return ["auto", "webrtc", "mjpeg"].includes(mode) ? mode : "auto";
  }

  endpoint(path, extra = {}) {
    // Default base: the page's own directory, so /webcam/ (or any prefix) carries over.
    let base = this.getAttribute("src") || ".";
    if (!base.endsWith("/")) base += "/";
    const url = new URL(path, new URL(base, document.baseURI));
    const camera = this.getAttribute("camera");
    if (camera) url.searchParams.set("camera", camera);
    const quality = this.getAttribute("quality");
    if (quality) url.searchParams.set("quality", quality);
    for (const [k, v] of Object.entries(extra)) url.searchParams.set(k, v);
    return url.href;
  }

  log(msg, ...rest) {
    console.info(`titanium-video[${this.getAttribute("camera") ?? "first"}]: ${msg}`, ...rest);
  }

  // -- control

  start() {
    const gen = ++this.generation;
    this.stats = this.emptyStats("connecting");
    this.lastTick = { at: performance.now(), frames: 0, bytes: null };
    this.recent = [];
    // getStats() of a connection closed meanwhile rejects: a skipped tick, not an error.
    this.every(1000, () => this.tick().catch((e) => this.log("stats tick failed", e)), gen);
    if (this.mode !== "mjpeg" && typeof RTCPeerConnection === "function") {
      this.tryWebRTC(gen);
    } else {
      // Even with mode="webrtc", a browser without WebRTC gets a picture, not a black box.
      if (this.mode === "webrtc") this.stats.error = "this browser has no WebRTC";
      this.playMjpeg(gen);
    }
  }

  stop() {
    this.generation++;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.closeSession();
    this.stopMjpeg();
    this.video.hidden = true;
  }

  later(ms, fn, gen) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (gen === this.generation) fn();
    }, ms);
    this.timers.add(t);
  }

  every(ms, fn, gen) {
    this.later(ms, () => {
      fn();
      this.every(ms, fn, gen);
    }, gen);
  }

  // -- WebRTC

  async tryWebRTC(gen) {
    const session = new WhepSession(this.endpoint("whep"), {
      onTrack: (stream) => {
        if (gen !== this.generation || this.session !== session) return;
        this.video.srcObject = stream;
        this.video.play().catch(() => {}); // muted autoplay is allowed; play() is a nudge
      },
      onFailed: (reason) => {
        if (gen === this.generation && this.session === session) this.webrtcFailed(gen, reason);
      },
      log: (msg, ...rest) => this.log(msg, ...rest),
    });
    this.closeSession();
    this.session = session;
    if (this.stats.mode === "none") this.stats.state = "connecting"; // else MJPEG plays on
    try {
      await session.start();
      await this.firstVideoFrame(gen);
    } catch (e) {
      if (gen === this.generation && this.session === session) this.webrtcFailed(gen, e);
      return;
    }
    if (gen !== this.generation || this.session !== session) return;
    // Playing: the video replaces whatever MJPEG was showing meanwhile.
    this.stopMjpeg();
    this.video.hidden = false;
    this.webrtcBackoff.reset();
    this.resetFigures("webrtc");
    this.lastProgress = performance.now();
    this.watchVideoFrames(gen);
    this.log(`playing WebRTC (${this.video.videoWidth}x${this.video.videoHeight})`);
  }

  firstVideoFrame(gen) {
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const poll = () => {
        if (gen !== this.generation) return reject(new Error("stopped"));
        // readyState ≥ HAVE_CURRENT_DATA: a frame was decoded. The element may be hidden
        // (MJPEG still showing), so requestVideoFrameCallback, which waits for painting,
        // cannot be the test here.
        if (this.video.readyState >= 2 && this.video.videoWidth > 0) return resolve();
        if (performance.now() - started > FIRST_FRAME_MS) {
          return reject(new Error(`no WebRTC frame decoded in ${FIRST_FRAME_MS / 1000} s`));
        }
        this.later(100, poll, gen);
      };
      poll();
    });
  }

  webrtcFailed(gen, error) {
    const reason = error?.message ?? String(error);
    this.closeSession();
    if (this.stats.mode === "webrtc") this.resetFigures("none");
    this.video.hidden = true;
    this.stats.error = reason;
    const unsupported = error instanceof WhepError && error.unsupported;
    if (this.mode === "webrtc") {
      const delay = this.webrtcBackoff.next();
      this.log(`WebRTC failed (${reason}); retrying in ${Math.round(delay)} ms`);
      this.stats.state = "reconnecting";
      this.render();
      this.later(delay, () => this.tryWebRTC(gen), gen);
      return;
    }
    // auto: keep a picture on screen with MJPEG at once.
    this.playMjpeg(gen);
    if (unsupported) {
      this.log(`no WebRTC on this server (${reason}); staying on MJPEG`);
      return;
    }
    // WebRTC is retried in the background; MJPEG keeps showing until it decodes a frame.
    const delay = this.webrtcBackoff.next();
    this.log(`WebRTC failed (${reason}); MJPEG now, WebRTC again in ${Math.round(delay)} ms`);
    this.later(delay, () => this.tryWebRTC(gen), gen);
  }

  closeSession() {
    if (!this.session) return;
    this.session.close();
    this.session = null;
    this.video.srcObject = null;
  }

  watchVideoFrames(gen) {
    const video = this.video;
    if (typeof video.requestVideoFrameCallback === "function") {
      // One callback per presented frame, with the time it is expected on screen.
      const onFrame = (now, meta) => {
        if (gen !== this.generation || this.stats.mode !== "webrtc") return;
        const shown = performance.timeOrigin + (meta.expectedDisplayTime ?? now);
        this.sample(video, meta.width || video.videoWidth, meta.height || video.videoHeight, shown);
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    } else {
      this.watchByAnimationFrame(video, gen, "webrtc");
    }
  }

  // -- MJPEG

  playMjpeg(gen) {
    if (this.stats.mode === "mjpeg" || this.mjpegPending) return;
    this.mjpegPending = true;
    const img = this.img;
    const opened = performance.now();
    const url = this.mjpegAttempts
      ? this.endpoint("stream", { t: Date.now() }) // a new URL forces a new request
      : this.endpoint("stream");
    this.mjpegAttempts = (this.mjpegAttempts ?? 0) + 1;
    const playing = () => {
      if (gen !== this.generation || img !== this.img || !this.mjpegPending) return;
      this.mjpegPending = false;
      img.hidden = false;
      this.video.hidden = true;
      this.resetFigures("mjpeg");
      this.lastProgress = performance.now();
      this.mjpegBackoff.reset();
      this.watchByAnimationFrame(img, gen, "mjpeg");
    };
    // Browsers differ on load events for multipart images (Firefox fires one per part,
    // Chrome only for the first): a decoded size is the sign that a frame arrived.
    const poll = () => {
      if (img !== this.img || !this.mjpegPending) return;
      if (img.naturalWidth > 0) return playing();
      if (performance.now() - opened > MJPEG_FIRST_FRAME_MS) {
        return this.mjpegRetry(gen, `no MJPEG frame in ${MJPEG_FIRST_FRAME_MS / 1000} s`);
      }
      this.later(100, poll, gen);
    };
    img.onload = playing;
    img.onerror = () => {
      if (gen === this.generation && img === this.img) {
        this.mjpegRetry(gen, "the MJPEG stream failed to load");
      }
    };
    // Reading pixels of another origin's image needs CORS (the stream sends
    // Access-Control-Allow-Origin: *); a same-origin image must not ask for it, so a proxy
    // that drops the header cannot break the picture.
    if (new URL(url).origin !== window.location.origin) img.crossOrigin = "anonymous";
    else img.removeAttribute("crossorigin");
    img.src = url;
    this.later(100, poll, gen);
  }

  mjpegRetry(gen, reason) {
    this.stopMjpeg();
    this.stats.error = reason;
    this.stats.state = "reconnecting";
    const delay = this.mjpegBackoff.next();
    this.log(`${reason}; MJPEG again in ${Math.round(delay)} ms`);
    this.later(delay, () => this.playMjpeg(gen), gen);
  }

  stopMjpeg() {
    this.mjpegPending = false;
    const img = this.img;
    img.onload = img.onerror = null;
    if (img.hasAttribute("src")) {
      // Chrome closes a multipart connection only when the element lets go of the URL;
      // a fresh element makes sure the old stream's socket is released now.
      const fresh = img.cloneNode(false);
      fresh.removeAttribute("src");
      fresh.hidden = true;
      img.replaceWith(fresh);
      img.removeAttribute("src");
      this.img = fresh;
    }
    if (this.stats.mode === "mjpeg") this.resetFigures("none");
  }

  // -- figures

  emptyStats(state) {
    return {
      mode: "none",
      state,
      framesDecoded: 0,
      fps: 0,
      bitrateKbps: null,
      latencyMs: null,
      width: 0,
      height: 0,
      codec: null,
      error: this.stats?.error ?? null,
    };
  }

  resetFigures(mode) {
    this.stats = { ...this.emptyStats(mode === "none" ? "connecting" : "playing"), mode };
    this.stats.codec = mode === "mjpeg" ? "MJPEG" : null;
    // WebRTC's counters start before playback does: the first tick only takes a baseline.
    this.lastTick = { at: performance.now(), frames: mode === "webrtc" ? null : 0, bytes: null };
    this.lastSeen = null;
    this.recent = [];
    this.render();
  }

  watchByAnimationFrame(source, gen, mode) {
    // An <img> with a multipart stream raises no event per frame: look at it once per
    // display refresh and count a frame when the strip's time (or, without a strip, the
    // pixels of the corner) changed.
    const onFrame = (t) => {
      if (gen !== this.generation || this.stats.mode !== mode) return;
      if (source.isConnected) {
        const w = source.naturalWidth || source.videoWidth;
        const h = source.naturalHeight || source.videoHeight;
        this.sample(source, w, h, performance.timeOrigin + t);
      }
      requestAnimationFrame(onFrame);
    };
    requestAnimationFrame(onFrame);
  }

  sample(source, width, height, shownAt) {
    let read = null;
    try {
      read = this.strip.read(source, width, height);
    } catch (e) {
      // A tainted canvas (cross-origin image without CORS): no figures from pixels, and
      // no way to tell a stalled stream, so it is taken to be alive.
      read = null;
      this.lastProgress = performance.now();
    }
    this.stats.width = width;
    this.stats.height = height;
    const key = read ? (read.ms ?? `c${read.checksum}`) : null;
    if (this.stats.mode === "mjpeg") {
      if (key === null || key === this.lastSeen) return;
      this.lastSeen = key;
      this.stats.framesDecoded++;
      this.lastProgress = performance.now();
    }
    if (read?.ms != null && key !== this.lastLatencyKey) {
      this.lastLatencyKey = key;
      const latency = shownAt - read.ms;
      this.latencySamples.push(latency);
      if (this.latencySamples.length > LATENCY_SAMPLES) this.latencySamples.shift();
      this.recent.push(latency);
    }
  }

  async tick() {
    const now = performance.now();
    const s = this.stats;
    const dt = (now - this.lastTick.at) / 1000;
    if (s.mode === "webrtc" && this.session?.pc) {
      const gen = this.generation;
      const inbound = await inboundVideoStats(this.session.pc);
      if (gen !== this.generation || this.stats !== s || !inbound) return;
      if (inbound.framesDecoded > s.framesDecoded) this.lastProgress = now;
      if (this.lastTick.frames !== null) {
        s.fps = round1((inbound.framesDecoded - this.lastTick.frames) / dt);
      }
      if (this.lastTick.bytes !== null) {
        s.bitrateKbps = Math.round(((inbound.bytesReceived - this.lastTick.bytes) * 8) / dt / 1000);
      }
      s.framesDecoded = inbound.framesDecoded;
      s.width = inbound.frameWidth ?? s.width;
      s.height = inbound.frameHeight ?? s.height;
      s.codec = inbound.codec ?? s.codec;
      this.lastTick = { at: now, frames: inbound.framesDecoded, bytes: inbound.bytesReceived };
      if (document.hidden) this.lastProgress = now; // no judging a hidden player
      if (now - this.lastProgress > WEBRTC_STALL_MS) {
        this.session?.fail(`no frame decoded for ${WEBRTC_STALL_MS / 1000} s`);
      }
    } else if (s.mode === "mjpeg") {
      s.fps = round1((s.framesDecoded - this.lastTick.frames) / dt);
      this.lastTick = { at: now, frames: s.framesDecoded, bytes: null };
      // Hidden tabs get no animation frames, so no frames are counted there.
      if (document.hidden) this.lastProgress = now;
      if (now - this.lastProgress > MJPEG_STALL_MS) {
        this.mjpegRetry(this.generation, `no new MJPEG frame for ${MJPEG_STALL_MS / 1000} s`);
      }
    }
    if (this.recent?.length) {
      s.latencyMs = Math.round(median(this.recent));
      this.recent = [];
    }
    this.render();
    this.dispatchEvent(new CustomEvent("stats", { detail: s }));
  }

  render() {
    const s = this.stats;
    let text;
    if (s.mode === "webrtc" || s.mode === "mjpeg") {
      const parts = [s.mode === "webrtc" ? "WebRTC" : "MJPEG"];
      if (s.mode === "webrtc" && s.codec) parts.push(s.codec);
      if (s.width) parts.push(`${s.width}×${s.height}`);
      parts.push(`${s.fps} fps`);
      if (s.bitrateKbps !== null) parts.push(formatRate(s.bitrateKbps));
      if (s.latencyMs !== null) parts.push(`${s.latencyMs} ms`);
      text = parts.join(" · ");
    } else {
      text = s.state === "reconnecting" ? `reconnecting… ${s.error ?? ""}` : "connecting…";
    }
    this.overlay.textContent = text;
    this.overlay.title = s.error ? `last error: ${s.error}` : "";
  }
}

/** The inbound video RTP figures of `pc`, with the codec name from its codec stats. */
async function inboundVideoStats(pc) {
  const report = await pc.getStats();
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

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function round1(x) {
  return Number.isFinite(x) ? Math.round(x * 10) / 10 : 0;
}

function formatRate(kbps) {
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mb/s` : `${kbps} kb/s`;
}

if (!customElements.get("titanium-video")) customElements.define("titanium-video", TitaniumVideo);
