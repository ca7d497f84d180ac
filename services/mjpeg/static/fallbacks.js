// The element's paths below WebRTC, and the choice between them: H.264 over the jmuxer
// WebSocket decoded with WebCodecs (webcodecs.js), LL-HLS with Media Source Extensions
// (llhls.js), then MJPEG (the element's own). Methods of <titanium-video>, kept apart so the
// element reads as its life cycle; titanium-video.js installs them on its prototype.

import { LlhlsReader, llhlsSupport } from "./llhls.js";
import { H264WsReader, h264WsSupported } from "./webcodecs.js";

export const H264_FIRST_FRAME_MS = 5000; // the keyframe a new client waits for comes within ~1 s
export const H264_STALL_MS = 5000;
export const HLS_FIRST_FRAME_MS = 10000; // the first segment takes a second or two to exist
export const HLS_STALL_MS = 8000;
/** The paths below WebRTC, best first. */
export const FALLBACKS = ["h264", "hls", "mjpeg"];

export const fallbackPaths = {
  /** The best path below WebRTC (after `after`, when one just failed) that this browser
   * has and the server or a proxy has not refused, unless one already plays: H.264 over a
   * WebSocket, LL-HLS, then MJPEG, which every browser has. `mode=` pins one. */
  playFallback(gen, after = null) {
    const playing = this.stats.mode;
    if (FALLBACKS.includes(playing) || this.h264Reader || this.hlsReader || this.mjpegPending) {
      return;
    }
    const has = {
      h264: () => h264WsSupported(),
      hls: () => llhlsSupport(this.hlsVideo) !== null,
      mjpeg: () => true,
    };
    let steps = FALLBACKS.slice(after ? FALLBACKS.indexOf(after) + 1 : 0);
    if (FALLBACKS.includes(this.mode)) {
      if (has[this.mode]()) steps = [this.mode];
      else this.stats.error = `this browser cannot play mode=${this.mode}`;
    }
    const step = steps.find((name) => has[name]() && !this.refused.has(name)) ?? "mjpeg";
    if (step === "h264") return this.playH264(gen);
    if (step === "hls") return this.playHls(gen);
    this.playMjpeg(gen);
  },

  /** ws: or wss: for the front door's `path`, from the same base as every other URL. */
  socketEndpoint(path, extra = {}) {
    const url = new URL(this.endpoint(path, extra));
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  },

  playH264(gen) {
    const opened = performance.now();
    const canvas = this.h264Canvas;
    let playing = false;
    const onFrame = () => {
      if (gen !== this.generation || reader !== this.h264Reader) return;
      this.lastProgress = performance.now();
      if (!playing) {
        playing = true;
        this.stopMjpeg();
        canvas.hidden = false;
        this.video.hidden = true;
        this.resetFigures("h264");
        this.stats.codec = `H.264 ${reader.codec} (WebCodecs)`;
        this.h264Backoff.reset();
        this.watchByAnimationFrame(canvas, gen, "h264");
        this.log(`playing H.264 over a WebSocket (${canvas.width}x${canvas.height})`);
      }
      this.stats.framesDecoded = reader.drawn;
    };
    const onEnd = (reason, drawn) => {
      if (gen !== this.generation || reader !== this.h264Reader) return;
      this.h264Failed(gen, reason, drawn);
    };
    // pace=0: each access unit as soon as it is encoded; the decoder shows it when decoded.
    const url = this.socketEndpoint("jmuxer", { pace: "0" });
    const reader = new H264WsReader(url, canvas, onFrame, onEnd);
    this.h264Reader = reader;
    const poll = () => {
      if (gen !== this.generation || reader !== this.h264Reader || playing) return;
      if (performance.now() - opened > H264_FIRST_FRAME_MS) {
        return this.h264Failed(gen, `no H.264 frame in ${H264_FIRST_FRAME_MS / 1000} s`, 0);
      }
      this.later(100, poll, gen);
    };
    this.later(100, poll, gen);
  },

  h264Failed(gen, reason, drawn) {
    this.stopH264();
    this.stats.error = reason;
    if (this.mode === "h264") {
      const delay = this.h264Backoff.next();
      this.stats.state = "reconnecting";
      this.log(`${reason}; H.264 again in ${Math.round(delay)} ms`);
      this.render();
      return this.later(delay, () => this.playH264(gen), gen);
    }
    // Refused before a frame (no such route, a proxy without WebSockets): not asked again.
    // A socket that played and dropped is tried again after the next WebRTC failure.
    if (drawn === 0) this.refused.add("h264");
    this.log(`${reason}; the next path down instead`);
    this.playFallback(gen, "h264");
  },

  playHls(gen) {
    const opened = performance.now();
    const video = this.hlsVideo;
    let playing = false;
    const onFrame = () => {
      if (gen !== this.generation || reader !== this.hlsReader) return;
      this.lastProgress = performance.now();
      if (playing) return;
      playing = true;
      this.stopMjpeg();
      video.hidden = false;
      this.video.hidden = true;
      this.resetFigures("hls");
      this.stats.codec = "H.264 (LL-HLS)";
      this.hlsBackoff.reset();
      this.watchVideoFrames(gen, video, "hls");
      this.log(`playing LL-HLS (${video.videoWidth}x${video.videoHeight})`);
    };
    const onEnd = (reason, played) => {
      if (gen !== this.generation || reader !== this.hlsReader) return;
      this.hlsFailed(gen, reason, played);
    };
    const reader = new LlhlsReader(this.endpoint("hls/index.m3u8"), video, onFrame, onEnd);
    this.hlsReader = reader;
    const poll = () => {
      if (gen !== this.generation || reader !== this.hlsReader || playing) return;
      if (performance.now() - opened > HLS_FIRST_FRAME_MS) {
        return this.hlsFailed(gen, `no LL-HLS frame in ${HLS_FIRST_FRAME_MS / 1000} s`, false);
      }
      this.later(100, poll, gen);
    };
    this.later(100, poll, gen);
  },

  hlsFailed(gen, reason, played) {
    this.stopHls();
    this.stats.error = reason;
    if (this.mode === "hls") {
      const delay = this.hlsBackoff.next();
      this.stats.state = "reconnecting";
      this.log(`${reason}; LL-HLS again in ${Math.round(delay)} ms`);
      this.render();
      return this.later(delay, () => this.playHls(gen), gen);
    }
    if (!played) this.refused.add("hls");
    this.log(`${reason}; the next path down instead`);
    this.playFallback(gen, "hls");
  },

  stopHls() {
    this.hlsReader?.stop();
    this.hlsReader = null;
    this.hlsVideo.hidden = true;
    if (this.stats.mode === "hls") this.resetFigures("none");
  },

  stopH264() {
    this.h264Reader?.stop();
    this.h264Reader = null;
    this.h264Canvas.hidden = true;
    if (this.stats.mode === "h264") this.resetFigures("none");
  },
};
