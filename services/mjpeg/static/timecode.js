// The timecode strip of Titanium's test pattern, read in the browser: the JavaScript twin of
// common/timecode.py (same geometry, sync word and CRC-8), byte for byte.


export const SYNC = 0b10110010;
export const COLS = 32;
export const ROWS = 2;
export const BITS = COLS * ROWS;

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
export class StripReader {
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
