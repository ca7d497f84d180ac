// <titanium-video>: one Titanium camera in a page. WebRTC over WHEP first; when it cannot
// connect, H.264 over a WebSocket decoded with WebCodecs (webcodecs.js), then LL-HLS with
// Media Source Extensions (llhls.js; native HLS in Safari), then MJPEG (read with fetch and
// drawn to a canvas, mjpegcanvas.js; else in an <img>); WebRTC is tried again
// in the background while a fallback plays. Reconnecting with backoff, and a small overlay with the mode, fps,
// bitrate and — when the source is Titanium's test pattern — the live capture-to-screen
// latency read from the timecode strip drawn into every frame (common/timecode.py).
//
//   <script type="module" src="titanium-video.js"></script>
//   <titanium-video camera="cam0" mode="auto"></titanium-video>
//
// Attributes: camera-id (or camera: the camera's id; the server's first camera when absent),
// quality (passed to the server as ?quality=), src (base URL of the Titanium front door;
// default: this page's own directory), mode (auto | webrtc | h264 | hls | mjpeg), token (an access token,
// sent as a /t/TOKEN/ path prefix on every request: WHEP players drop the query, and the
// session URL the server answers keeps the prefix for the trickle PATCH and the DELETE),
// ice-policy (all | relay: "relay" takes TURN only, to check a relay works).
// Remote viewing (docs/mirage-protocol.md): mirage-server (the proxy's base URL) with device
// and camera-id signals WHEP through ${mirage-server}/d/${device}/whep/${camera-id}?token=T.
// The proxy carries no video, so there is no MJPEG fallback then.
// For tests and tools: element.stats → {mode (none | webrtc | h264 | hls | mjpeg), state, framesDecoded, fps, bitrateKbps,
// latencyMs, width, height, codec, route, error, mjpegReader} (route: how the video arrives,
// {kind: direct | nat | relay, local, remote, protocol, relayProtocol}, from the selected ICE
// candidate pair; mjpegReader: canvas | img, how MJPEG is drawn), element.latencySamples (recent latencies in ms), element.peerConnection
// (the live RTCPeerConnection in WebRTC mode), element.reconnect().
//
// Every URL is relative: nginx serves Titanium under prefixes such as /webcam/ that the page
// cannot know.

import { CanvasMjpegReader, canvasMjpegSupported } from "./mjpegcanvas.js";
import { FALLBACKS, fallbackPaths, PATHS } from "./fallbacks.js";
import { StripReader } from "./timecode.js";
import { inboundVideoStats, routeLabel, selectedRoute, WhepError, WhepSession } from "./whep.js";

// Re-exported for tests and tools that import this one module.
export { crc8, decodeStrip, stripSize } from "./timecode.js";
export { parseLinkIceServers, routeLabel, sdpFragment, selectedRoute } from "./whep.js";

// ---- The element -------------------------------------------------------------------------

const FIRST_FRAME_MS = 5000; // a WebRTC session with no decoded frame by then falls back
const WEBRTC_STALL_MS = 5000; // framesDecoded standing still this long: reconnect
const MJPEG_FIRST_FRAME_MS = 10000;
const MJPEG_STALL_MS = 10000;
const LATENCY_SAMPLES = 1000;

const STYLE = `
  :host { display: inline-block; position: relative; background: #000; line-height: 0;
          min-width: 160px; min-height: 90px; }
  video, img, canvas { display: block; max-width: 100%; height: auto; }
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
  static observedAttributes = [
    "camera",
    "camera-id",
    "quality",
    "src",
    "mode",
    "token",
    "mirage-server",
    "device",
    "ice-policy",
  ];

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>${STYLE}</style>
      <video muted playsinline autoplay hidden></video>
      <img alt="" hidden>
      <canvas hidden></canvas>
      <canvas class="h264" hidden></canvas>
      <video class="hls" muted playsinline autoplay hidden></video>
      <div class="overlay" part="overlay">connecting…</div>`;
    this.video = root.querySelector("video");
    this.img = root.querySelector("img");
    this.canvas = root.querySelector("canvas");
    this.h264Canvas = root.querySelector("canvas.h264");
    this.hlsVideo = root.querySelector("video.hls");
    this.hlsVideo.muted = true;
    this.hlsReader = null;
    this.refused = new Set(); // fallback paths the server or a proxy refused before a frame
    this.mjpegReader = null;
    this.h264Reader = null;
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
    this.h264Backoff = new Backoff(1000, 30000);
    this.hlsBackoff = new Backoff(1000, 30000);
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
    return ["auto", "webrtc", "h264", "hls", "mjpeg"].includes(mode) ? mode : "auto";
  }

  /** The camera's id: camera-id, the specification's name, or camera, the older one. */
  get cameraId() {
    return this.getAttribute("camera-id") || this.getAttribute("camera") || null;
  }

  /** The Mirage proxy's base URL, or null for the front door on the LAN. */
  get mirageServer() {
    return this.getAttribute("mirage-server") || null;
  }

  get icePolicy() {
    return (this.getAttribute("ice-policy") || "").toLowerCase() === "relay" ? "relay" : "all";
  }

  /** Why the attributes cannot work through the proxy, or null. */
  mirageProblem() {
    if (!this.mirageServer) return null;
    if (!this.getAttribute("device")) return "mirage-server is set but device is missing";
    if (!this.cameraId) return "mirage-server is set but camera-id is missing";
    return null;
  }

  /** The proxy's WHEP URL for this device and camera, the token as ?token=. */
  mirageEndpoint() {
    let base = this.mirageServer;
    if (!base.endsWith("/")) base += "/";
    const path = `d/${encodeURIComponent(this.getAttribute("device"))}/whep/${encodeURIComponent(this.cameraId)}`;
    const url = new URL(path, new URL(base, document.baseURI));
    const token = this.getAttribute("token");
    if (token) url.searchParams.set("token", token);
    const quality = this.getAttribute("quality");
    if (quality) url.searchParams.set("quality", quality);
    return url.href;
  }

  endpoint(path, extra = {}) {
    // Default base: the page's own directory, so /webcam/ (or any prefix) carries over.
    let base = this.getAttribute("src") || ".";
    if (!base.endsWith("/")) base += "/";
    const token = this.getAttribute("token");
    if (token) path = `t/${encodeURIComponent(token)}/${path}`;
    const url = new URL(path, new URL(base, document.baseURI));
    const camera = this.cameraId;
    if (camera) url.searchParams.set("camera", camera);
    const quality = this.getAttribute("quality");
    if (quality) url.searchParams.set("quality", quality);
    for (const [k, v] of Object.entries(extra)) url.searchParams.set(k, v);
    return url.href;
  }

  log(msg, ...rest) {
    console.info(`titanium-video[${this.cameraId ?? "first"}]: ${msg}`, ...rest);
  }

  // -- control

  start() {
    const gen = ++this.generation;
    this.stats = this.emptyStats("connecting");
    this.webrtcFailedOnce = false;
    this.lastTick = { at: performance.now(), frames: 0, bytes: null };
    this.recent = [];
    // getStats() of a connection closed meanwhile rejects: a skipped tick, not an error.
    this.every(1000, () => this.tick().catch((e) => this.log("stats tick failed", e)), gen);
    if (this.mirageServer) {
      // Through the proxy WebRTC is the only way: it relays signalling, never video.
      const problem =
        this.mirageProblem() ??
        (typeof RTCPeerConnection !== "function" ? "this browser has no WebRTC" : null) ??
        (this.mode === "mjpeg" ? "mode=mjpeg: the Mirage proxy carries no MJPEG" : null);
      if (problem) return this.giveUp(problem);
      this.tryWebRTC(gen);
    } else if (FALLBACKS.includes(this.mode)) {
      this.playFallback(gen);
    } else if (typeof RTCPeerConnection === "function") {
      this.tryWebRTC(gen);
    } else {
      // Even with mode="webrtc", a browser without WebRTC gets a picture, not a black box.
      this.stats.error = "this browser has no WebRTC";
      this.playFallback(gen);
    }
  }

  stop() {
    this.generation++;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.closeSession();
    this.stopMjpeg();
    this.stopH264();
    this.stopHls();
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

  /** Stop trying: what is wrong will not heal by itself (a new attribute restarts). */
  giveUp(reason) {
    this.log(reason);
    this.stats.error = reason;
    this.stats.state = "failed";
    this.render();
  }

  // -- WebRTC

  async tryWebRTC(gen) {
    const url = this.mirageServer ? this.mirageEndpoint() : this.endpoint("whep");
    const session = new WhepSession(url, {
      iceTransportPolicy: this.icePolicy,
      // The proxy authenticates the PATCH and DELETE by ?token= too.
      keepQuery: this.mirageServer ? ["token"] : [],
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
    // Playing: the video replaces whatever fallback was showing meanwhile.
    this.stopMjpeg();
    this.stopH264();
    this.stopHls();
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
    this.webrtcFailedOnce = true;
    this.closeSession();
    if (this.stats.mode === "webrtc") this.resetFigures("none");
    this.video.hidden = true;
    this.stats.error = reason;
    const unsupported = error instanceof WhepError && error.unsupported;
    // The proxy refused the token or the device: asking again gets the same answer.
    if (this.mirageServer && error instanceof WhepError && [401, 403].includes(error.status)) {
      return this.giveUp(reason);
    }
    if (this.mode === "webrtc" || this.mirageServer) {
      const delay = this.webrtcBackoff.next();
      this.log(`WebRTC failed (${reason}); retrying in ${Math.round(delay)} ms`);
      this.stats.state = "reconnecting";
      this.render();
      this.later(delay, () => this.tryWebRTC(gen), gen);
      return;
    }
    // auto: keep a picture on screen with the next path down at once.
    this.playFallback(gen);
    if (unsupported) {
      this.log(`no WebRTC on this server (${reason}); staying on the fallback`);
      return;
    }
    // WebRTC is retried in the background; the fallback shows until WebRTC decodes a frame.
    const delay = this.webrtcBackoff.next();
    this.log(`WebRTC failed (${reason}); fallback now, WebRTC again in ${Math.round(delay)} ms`);
    this.later(delay, () => this.tryWebRTC(gen), gen);
  }

  closeSession() {
    if (!this.session) return;
    this.session.close();
    this.session = null;
    this.video.srcObject = null;
  }

  watchVideoFrames(gen, video = this.video, mode = "webrtc") {
    if (typeof video.requestVideoFrameCallback === "function") {
      // One callback per presented frame, with the time it is expected on screen.
      const onFrame = (now, meta) => {
        if (gen !== this.generation || this.stats.mode !== mode) return;
        if (mode === "hls") this.stats.framesDecoded++;
        const shown = performance.timeOrigin + (meta.expectedDisplayTime ?? now);
        this.sample(video, meta.width || video.videoWidth, meta.height || video.videoHeight, shown);
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    } else {
      this.watchByAnimationFrame(video, gen, mode);
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
    if (canvasMjpegSupported() && !this.mjpegImgOnly) return this.playMjpegCanvas(gen, url);
    const playing = () => {
      if (gen !== this.generation || img !== this.img || !this.mjpegPending) return;
      this.mjpegPending = false;
      img.hidden = false;
      this.video.hidden = true;
      this.resetFigures("mjpeg");
      this.stats.mjpegReader = "img";
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

  // fetch + createImageBitmap + canvas: shown a refresh earlier than <img> in Chromium. A
  // stream that fails before its first frame (a proxy without CORS for another origin, an
  // old browser's fetch) falls back to <img> for good.
  playMjpegCanvas(gen, url) {
    const opened = performance.now();
    const canvas = this.canvas;
    const onFrame = () => {
      if (gen !== this.generation || !this.mjpegPending) return;
      this.mjpegPending = false;
      canvas.hidden = false;
      this.video.hidden = true;
      this.resetFigures("mjpeg");
      this.stats.mjpegReader = "canvas";
      this.lastProgress = performance.now();
      this.mjpegBackoff.reset();
      this.watchByAnimationFrame(canvas, gen, "mjpeg");
    };
    const onEnd = (reason, drawn) => {
      if (gen !== this.generation) return;
      if (drawn === 0) {
        this.log(`${reason}; MJPEG through <img> instead`);
        this.mjpegImgOnly = true;
        this.stopMjpeg();
        return this.playMjpeg(gen);
      }
      this.mjpegRetry(gen, reason);
    };
    const poll = () => {
      if (gen !== this.generation || !this.mjpegPending || this.mjpegReader === null) return;
      if (performance.now() - opened > MJPEG_FIRST_FRAME_MS) {
        return this.mjpegRetry(gen, `no MJPEG frame in ${MJPEG_FIRST_FRAME_MS / 1000} s`);
      }
      this.later(100, poll, gen);
    };
    this.mjpegReader = new CanvasMjpegReader(url, canvas, onFrame, onEnd);
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
    this.mjpegReader?.stop();
    this.mjpegReader = null;
    this.canvas.hidden = true;
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
      route: null,
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
        const w = source.naturalWidth || source.videoWidth || source.width;
        const h = source.naturalHeight || source.videoHeight || source.height;
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
      const report = await this.session.pc.getStats();
      const inbound = inboundVideoStats(report);
      if (gen !== this.generation || this.stats !== s || !inbound) return;
      s.route = selectedRoute(report) ?? s.route;
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
    } else if (PATHS[s.mode]) {
      const { name, stallMs } = PATHS[s.mode];
      s.fps = round1((s.framesDecoded - this.lastTick.frames) / dt);
      this.lastTick = { at: now, frames: s.framesDecoded, bytes: null };
      if (document.hidden) this.lastProgress = now;
      if (now - this.lastProgress > stallMs) {
        this.pathFailed(this.generation, s.mode, `no ${name} frame for ${stallMs / 1000} s`, true);
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
    if (s.mode === "webrtc" || FALLBACKS.includes(s.mode)) {
      const names = { webrtc: "WebRTC", h264: "H.264 over WebSocket", hls: "LL-HLS", mjpeg: "MJPEG" };
      const parts = [names[s.mode]];
      if (s.mode === "webrtc" && s.codec) parts.push(s.codec);
      if (s.width) parts.push(`${s.width}×${s.height}`);
      parts.push(`${s.fps} fps`);
      if (s.bitrateKbps !== null) parts.push(formatRate(s.bitrateKbps));
      if (s.latencyMs !== null) parts.push(`${s.latencyMs} ms`);
      if (s.mode === "webrtc" && s.route) parts.push(routeLabel(s.route));
      text = parts.join(" · ");
    } else if (s.state === "failed") {
      text = `${this.mirageServer ? "remote viewing: " : ""}${s.error}`;
    } else if (s.state === "reconnecting") {
      text = `reconnecting… ${s.error ?? ""}`;
    } else {
      text = "connecting…";
    }
    if (this.mirageServer && s.mode !== "webrtc" && this.webrtcFailedOnce) {
      text += " — WebRTC failed, and the Mirage proxy carries no video: no MJPEG fallback";
    }
    this.overlay.textContent = text;
    this.overlay.title = s.error ? `last error: ${s.error}` : "";
  }
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

// The paths below WebRTC (H.264 over a WebSocket, LL-HLS) and the choice between them.
Object.assign(TitaniumVideo.prototype, fallbackPaths);

if (!customElements.get("titanium-video")) customElements.define("titanium-video", TitaniumVideo);
