// Titanium's LL-HLS (services/mjpeg/hls/) played with Media Source Extensions: the element's
// path where neither WebRTC nor a WebSocket passes (a proxy that allows plain HTTP only) and
// the browser has no WebCodecs. No player library: Titanium's playlist names its parts with
// consecutive ids (part41.mp4, part42.mp4, …) and holds the request for the next one until
// it exists (its preload hint), so the reader appends the newest independent part and then
// asks for each next part in turn. Safari without MSE plays the playlist natively.

const PLAYLIST_EVERY_MS = 5000; // how often the init segment (a new SPS) is looked for
const LIVE_EDGE_S = 0.3; // where playback is put back when it lags
const MAX_LAG_S = 1.0;
const KEEP_BEHIND_S = 4; // buffered media kept behind the playhead

/** "mse", "native" or null: how this browser can play it. */
export function llhlsSupport(video) {
  const ms = globalThis.ManagedMediaSource ?? globalThis.MediaSource;
  if (typeof ms === "function" && typeof fetch === "function") return "mse";
  if (video?.canPlayType?.("application/vnd.apple.mpegurl")) return "native";
  return null;
}

/** {init, parts: [{id, uri, independent}], hint: {id, uri}} of a media playlist's text. */
export function parseMediaPlaylist(text, base) {
  const attr = (line, name) => line.match(new RegExp(`${name}="([^"]*)"`))?.[1] ?? null;
  const idOf = (uri) => Number(uri.match(/part(\d+)\.mp4/)?.[1] ?? NaN);
  const out = { init: null, parts: [], hint: null };
  for (const line of text.split("\n")) {
    if (line.startsWith("#EXT-X-MAP:")) out.init = new URL(attr(line, "URI"), base).href;
    else if (line.startsWith("#EXT-X-PART:")) {
      const uri = new URL(attr(line, "URI"), base).href;
      out.parts.push({ id: idOf(uri), uri, independent: line.includes("INDEPENDENT=YES") });
    } else if (line.startsWith("#EXT-X-PRELOAD-HINT:")) {
      const uri = new URL(attr(line, "URI"), base).href;
      out.hint = { id: idOf(uri), uri };
    }
  }
  return out;
}

export class LlhlsReader {
  /**
   * Plays the multivariant playlist `url` into `video`; `onFrame()` when playback advances,
   * `onEnd(reason, played)` once when it fails (played: whether any frame was shown).
   */
  constructor(url, video, onFrame, onEnd) {
    this.url = url;
    this.video = video;
    this.onFrame = onFrame;
    this.onEnd = onEnd;
    this.played = false;
    this.controller = new AbortController();
    this.run().catch((e) => this.end(e?.name === "AbortError" ? null : String(e?.message ?? e)));
  }

  stop() {
    this.onEnd = null;
    this.controller.abort();
    clearInterval(this.ticker);
    this.video.removeAttribute("src");
    this.video.load();
  }

  end(reason) {
    const onEnd = this.onEnd;
    this.stop();
    if (onEnd && reason !== null) onEnd(reason, this.played);
  }

  async get(url, kind) {
    const res = await fetch(url, { signal: this.controller.signal, cache: "no-store" });
    if (!res.ok) throw new Error(`the HLS ${kind} answered ${res.status}`);
    return kind === "playlist" ? res.text() : res.arrayBuffer();
  }

  async run() {
    const master = await this.get(this.url, "playlist");
    const stream = master.split("\n").find((l) => l && !l.startsWith("#"));
    const codecs = master.match(/CODECS="([^"]+)"/)?.[1] ?? "avc1.42e01f";
    if (!stream) throw new Error("the HLS playlist names no stream");
    const mediaUrl = new URL(stream, this.url).href;
    this.ticker = setInterval(() => this.progress(), 250);
    if (llhlsSupport(this.video) === "native") {
      this.video.src = mediaUrl;
      await this.video.play().catch(() => {});
      return;
    }
    const MS = globalThis.ManagedMediaSource ?? globalThis.MediaSource;
    const type = `video/mp4; codecs="${codecs}"`;
    if (!MS.isTypeSupported(type)) throw new Error(`this browser cannot play ${type}`);
    const source = new MS();
    this.video.disableRemotePlayback = true; // ManagedMediaSource asks for it
    this.video.src = URL.createObjectURL(source);
    await new Promise((resolve) => source.addEventListener("sourceopen", resolve, { once: true }));
    const buffer = source.addSourceBuffer(type);
    const settled = () =>
      buffer.updating
        ? new Promise((resolve) => buffer.addEventListener("updateend", resolve, { once: true }))
        : null;
    const append = async (data) => {
      await settled(); // a removal of old media may still be running
      return new Promise((resolve, reject) => {
        buffer.addEventListener("updateend", resolve, { once: true });
        buffer.addEventListener("error", () => reject(new Error("the HLS part did not decode")), {
          once: true,
        });
        buffer.appendBuffer(data);
      });
    };
    const first = parseMediaPlaylist(await this.get(mediaUrl, "playlist"), mediaUrl);
    const start = [...first.parts].reverse().find((p) => p.independent);
    if (!first.init || !start) throw new Error("the HLS playlist has no independent part yet");
    await append(await this.get(first.init, "init segment"));
    let next = start;
    let lastCheck = performance.now();
    for (;;) {
      await append(await this.get(next.uri, "part"));
      this.keepLive(buffer);
      // The next id, at the URI the playlist gave this one (its query carries the token).
      next = { id: next.id + 1, uri: next.uri.replace(/part\d+\.mp4/, `part${next.id + 1}.mp4`) };
      if (performance.now() - lastCheck > PLAYLIST_EVERY_MS) {
        lastCheck = performance.now();
        const now = parseMediaPlaylist(await this.get(mediaUrl, "playlist"), mediaUrl);
        if (now.init !== first.init) throw new Error("the stream changed (a new init segment)");
      }
    }
  }

  keepLive(buffer) {
    const v = this.video;
    if (!v.buffered.length) return;
    const end = v.buffered.end(v.buffered.length - 1);
    if (v.currentTime < v.buffered.start(0) || end - v.currentTime > MAX_LAG_S) {
      v.currentTime = Math.max(v.buffered.start(0), end - LIVE_EDGE_S);
    }
    if (v.paused) v.play().catch(() => {});
    const behind = v.currentTime - KEEP_BEHIND_S;
    if (behind > v.buffered.start(0) && !buffer.updating) buffer.remove(0, behind);
  }

  progress() {
    const t = this.video.currentTime;
    if (t > (this.lastTime ?? 0) && this.video.readyState >= 2) {
      this.played = true;
      this.onFrame?.();
    }
    this.lastTime = t;
  }
}
