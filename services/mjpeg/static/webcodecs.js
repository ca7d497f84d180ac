// H.264 over a WebSocket, decoded with WebCodecs and drawn to a canvas: the element's path
// when WebRTC cannot connect (UDP blocked, a proxy that passes only TCP). The server sends
// one Annex-B access unit per binary message, each client starting at SPS + PPS + IDR (the
// jmuxer dialect's bytes). Browsers decode H.264 themselves now (`VideoDecoder`), so no
// decoder has to be shipped in the page.
//
// A decoder that falls behind (its queue grows) drops what it has queued and waits for the
// next keyframe, as the server does for a slow socket: latency stays bounded, never a backlog.

const NAL_SPS = 7;
const NAL_IDR = 5;
const NAL_AUD = 9;
const MAX_QUEUE = 3; // access units waiting in the decoder before it is let to catch up

/** Whether this browser can play this path (else the element moves on to the next). */
export function h264WsSupported() {
  return (
    typeof WebSocket === "function" &&
    typeof VideoDecoder === "function" &&
    typeof EncodedVideoChunk === "function"
  );
}

/** The NAL units of an Annex-B buffer: [{type, start, end}] (start after the start code). */
export function nalUnits(bytes) {
  const units = [];
  let i = 0;
  let start = -1;
  const n = bytes.length;
  while (i + 2 < n) {
    if (bytes[i] === 0 && bytes[i + 1] === 0 && bytes[i + 2] === 1) {
      if (start >= 0) units.push(unitAt(bytes, start, i));
      i += 3;
      start = i;
    } else {
      i++;
    }
  }
  if (start >= 0 && start < n) units.push(unitAt(bytes, start, n));
  return units;
}

function unitAt(bytes, start, end) {
  // A four-byte start code leaves its leading zero at the end of the unit before.
  while (end > start && bytes[end - 1] === 0) end--;
  return { type: bytes[start] & 0x1f, start, end };
}

/** RFC 6381's codec string for the SPS at `bytes[start]`: avc1.PPCCLL. */
export function codecOf(bytes, sps) {
  const hex = (b) => b.toString(16).padStart(2, "0");
  return `avc1.${hex(bytes[sps.start + 1])}${hex(bytes[sps.start + 2])}${hex(bytes[sps.start + 3])}`;
}

export class H264WsReader {
  /**
   * Plays `url` (ws: or wss:) into `canvas`; `onFrame()` after each frame drawn,
   * `onEnd(reason, drawn)` once when the socket or the decoder fails or closes.
   */
  constructor(url, canvas, onFrame, onEnd) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onFrame = onFrame;
    this.onEnd = onEnd;
    this.drawn = 0;
    this.codec = null;
    this.waitKey = true;
    this.decoder = null;
    this.socket = new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.socket.onmessage = (e) => {
      if (e.data instanceof ArrayBuffer) this.onUnit(new Uint8Array(e.data));
    };
    this.socket.onclose = (e) => this.end(`the H.264 socket closed (${e.code}${e.reason ? ` ${e.reason}` : ""})`);
    this.socket.onerror = () => this.end("the H.264 socket failed");
  }

  stop() {
    this.onEnd = null;
    this.socket.onclose = this.socket.onerror = this.socket.onmessage = null;
    this.socket.close();
    if (this.decoder && this.decoder.state !== "closed") this.decoder.close();
  }

  end(reason) {
    const onEnd = this.onEnd;
    this.stop();
    if (onEnd) onEnd(reason, this.drawn);
  }

  onUnit(bytes) {
    const units = nalUnits(bytes);
    const key = units.some((u) => u.type === NAL_IDR);
    const sps = units.find((u) => u.type === NAL_SPS);
    if (sps && !this.decoder) this.configure(codecOf(bytes, sps));
    if (!this.decoder) return; // nothing decodes before the first SPS
    if (this.decoder.decodeQueueSize > MAX_QUEUE) {
      this.decoder.reset(); // drops the queue; needs configure() again, then a keyframe
      this.decoder.configure(this.config);
      this.waitKey = true;
    }
    if (this.waitKey && !key) return;
    this.waitKey = false;
    // The AUDs the server adds for jmuxer carry nothing a decoder needs.
    const kept = units.filter((u) => u.type !== NAL_AUD);
    let size = 0;
    for (const u of kept) size += 4 + u.end - u.start;
    const data = new Uint8Array(size);
    let at = 0;
    for (const u of kept) {
      data.set([0, 0, 0, 1], at);
      data.set(bytes.subarray(u.start, u.end), at + 4);
      at += 4 + u.end - u.start;
    }
    this.decoder.decode(
      new EncodedVideoChunk({
        type: key ? "key" : "delta",
        timestamp: Math.round(performance.now() * 1000),
        data,
      }),
    );
  }

  configure(codec) {
    this.codec = codec;
    // No `description`: the chunks are Annex-B, SPS and PPS in band.
    this.config = { codec, optimizeForLatency: true, hardwareAcceleration: "no-preference" };
    this.decoder = new VideoDecoder({
      output: (frame) => this.draw(frame),
      error: (e) => this.end(`the H.264 decoder failed: ${e?.message ?? e}`),
    });
    this.decoder.configure(this.config);
  }

  draw(frame) {
    if (this.canvas.width !== frame.displayWidth || this.canvas.height !== frame.displayHeight) {
      this.canvas.width = frame.displayWidth;
      this.canvas.height = frame.displayHeight;
    }
    this.ctx.drawImage(frame, 0, 0);
    frame.close();
    this.drawn++;
    this.onFrame?.();
  }
}
