// The element's paths below WebRTC, and the choice between them: H.264 over the jmuxer
// WebSocket decoded with WebCodecs (webcodecs.js), LL-HLS with Media Source Extensions
// (llhls.js), then MJPEG (the element's own). Methods of <titanium-video>, kept apart so the
// element reads as its life cycle; titanium-video.js installs them on its prototype.

import { LlhlsReader, llhlsSupport } from "./llhls.js";
import { H264WsReader, h264WsSupported } from "./webcodecs.js";

/** The paths below WebRTC, best first. */
export const FALLBACKS = ["h264", "hls", "mjpeg"];

/** What the element needs to know of each path with a reader of its own (MJPEG has its own
 * retry, mjpegRetry). firstFrameMs: the keyframe a new H.264 client waits for comes within
 * ~1 s, the first LL-HLS segment takes a second or two to exist. */
export const PATHS = {
  h264: {
    name: "H.264",
    firstFrameMs: 5000,
    stallMs: 5000,
    play: (el, gen) => el.playH264(gen),
    stop: (el) => el.stopH264(),
    backoff: (el) => el.h264Backoff,
  },
  hls: {
    name: "LL-HLS",
    firstFrameMs: 10000,
    stallMs: 8000,
    play: (el, gen) => el.playHls(gen),
    stop: (el) => el.stopHls(),
    backoff: (el) => el.hlsBackoff,
  },
};

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
      this.pathFailed(gen, "h264", reason, drawn > 0);
    };
    // pace=0: each access unit as soon as it is encoded; the decoder shows it when decoded.
    const url = this.socketEndpoint("jmuxer", { pace: "0" });
    const reader = new H264WsReader(url, canvas, onFrame, onEnd);
    this.h264Reader = reader;
    this.firstFrameDeadline(gen, "h264", () => reader === this.h264Reader && !playing);
  },

  /** Fails `path` unless its first frame came within its time (`waiting()`: this reader is
   * still the current one and has shown nothing yet). */
  firstFrameDeadline(gen, path, waiting) {
    const { name, firstFrameMs } = PATHS[path];
    const opened = performance.now();
    const poll = () => {
      if (gen !== this.generation || !waiting()) return;
      if (performance.now() - opened > firstFrameMs) {
        return this.pathFailed(gen, path, `no ${name} frame in ${firstFrameMs / 1000} s`, false);
      }
      this.later(100, poll, gen);
    };
    this.later(100, poll, gen);
  },

  /** `path` failed (`played`: after showing frames). Pinned by mode=, it is tried again with
   * backoff; else the next path down plays. One refused before any frame (no such route, a
   * proxy without WebSockets) is not asked again; one that played and dropped is tried again
   * after the next WebRTC failure. */
  pathFailed(gen, path, reason, played) {
    const { name, stop, play, backoff } = PATHS[path];
    stop(this);
    this.stats.error = reason;
    if (this.mode === path) {
      const delay = backoff(this).next();
      this.stats.state = "reconnecting";
      this.log(`${reason}; ${name} again in ${Math.round(delay)} ms`);
      this.render();
      return this.later(delay, () => play(this, gen), gen);
    }
    if (!played) this.refused.add(path);
    this.log(`${reason}; the next path down instead`);
    this.playFallback(gen, path);
  },

  playHls(gen) {
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
      this.pathFailed(gen, "hls", reason, played);
    };
    const reader = new LlhlsReader(this.endpoint("hls/index.m3u8"), video, onFrame, onEnd);
    this.hlsReader = reader;
    this.firstFrameDeadline(gen, "hls", () => reader === this.hlsReader && !playing);
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
