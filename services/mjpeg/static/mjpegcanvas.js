// MJPEG read with fetch and drawn to a canvas: Chromium shows a multipart <img> one display
// refresh after it decoded the part; decoding each JPEG with createImageBitmap and drawing it
// ourselves shows it ~14 ms earlier at 720p (docs/performance.md, "Latency in Chromium").
// Only the newest complete JPEG is decoded; one that arrived while another was decoding is
// skipped, as the server skips for a slow client.

/** Whether this browser can read a stream this way (else the element uses <img>). */
export function canvasMjpegSupported() {
  return (
    typeof fetch === "function" &&
    typeof createImageBitmap === "function" &&
    typeof AbortController === "function" &&
    typeof ReadableStream === "function"
  );
}

function findPair(bytes, b0, b1, from) {
  for (let i = from; i + 1 < bytes.length; i++) {
    if (bytes[i] === b0 && bytes[i + 1] === b1) return i;
  }
  return -1;
}

export class CanvasMjpegReader {
  /**
   * Reads `url` into `canvas`; `onFrame()` after each frame drawn, `onEnd(reason, drawn)`
   * once when the stream fails or ends (drawn: frames drawn before that).
   */
  constructor(url, canvas, onFrame, onEnd) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onFrame = onFrame;
    this.onEnd = onEnd;
    this.drawn = 0;
    this.controller = new AbortController();
    this.run(url).catch((e) => this.end(e?.name === "AbortError" ? null : String(e)));
  }

  stop() {
    this.onEnd = null;
    this.controller.abort();
  }

  end(reason) {
    const onEnd = this.onEnd;
    this.onEnd = null;
    if (onEnd && reason !== null) onEnd(reason, this.drawn);
  }

  async run(url) {
    const res = await fetch(url, { signal: this.controller.signal, cache: "no-store" });
    if (!res.ok || !res.body) throw new Error(`the MJPEG stream answered ${res.status}`);
    const reader = res.body.getReader();
    let buf = new Uint8Array(0);
    let scanned = 0; // bytes of buf already searched for the end of the JPEG it starts
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return this.end("the MJPEG stream ended");
      const joined = new Uint8Array(buf.length + value.length);
      joined.set(buf);
      joined.set(value, buf.length);
      buf = joined;
      let newest = null;
      for (;;) {
        // Scans use JPEG's markers: FF D9 cannot occur inside entropy-coded data.
        const soi = findPair(buf, 0xff, 0xd8, 0);
        if (soi < 0) {
          buf = new Uint8Array(0);
          scanned = 0;
          break;
        }
        const eoi = findPair(buf, 0xff, 0xd9, Math.max(soi + 2, scanned - 1));
        if (eoi < 0) {
          buf = buf.slice(soi);
          scanned = buf.length;
          break;
        }
        newest = buf.slice(soi, eoi + 2);
        buf = buf.slice(eoi + 2);
        scanned = 0;
      }
      if (newest) await this.draw(newest);
    }
  }

  async draw(jpeg) {
    const bitmap = await createImageBitmap(new Blob([jpeg], { type: "image/jpeg" }));
    if (this.controller.signal.aborted) return bitmap.close();
    if (this.canvas.width !== bitmap.width || this.canvas.height !== bitmap.height) {
      this.canvas.width = bitmap.width;
      this.canvas.height = bitmap.height;
    }
    this.ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    this.drawn++;
    this.onFrame();
  }
}
