"""The MJPEG benchmark's viewer: one process reading /stream off a raw socket with as little
Python per byte as possible, counting the parts inside the measured window and, for the one
viewer that decodes, the latency read from each frame's timecode."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any


@dataclass
class ViewerResult:
    index: int
    frames: int = 0  # parts received inside the measured window
    bytes: int = 0  # their JPEG bytes
    parts: int = 0  # parts received in all
    bad_parts: int = 0  # parts that do not start like a JPEG
    latencies_ms: list[float] = field(default_factory=list)
    unreadable: int = 0  # decoded frames without a valid timecode
    stamp_skew_ms: float = 0.0  # largest |timecode - X-Timestamp|, a check of the reader
    error: str = ""


class _Stop(Exception):
    """The measured window is over."""


class _Parts:
    """Reads a multipart body off a socket with as little Python per byte as possible."""

    def __init__(self, sock: socket.socket, stop: Callable[[], bool]) -> None:
        self.sock, self.stop = sock, stop
        self.buf = bytearray()
        self.pos = 0

    def _fill(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(1 << 18)
                break
            except TimeoutError:
                if self.stop():
                    raise _Stop from None
        if not chunk:
            raise ConnectionError("the server closed the stream")
        if self.pos > 1 << 20:
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += chunk

    def until(self, delim: bytes) -> bytes:
        skip = 0  # relative to pos, which a compaction in _fill moves
        while (i := self.buf.find(delim, self.pos + skip)) < 0:
            skip = max(0, len(self.buf) - self.pos - len(delim) + 1)
            self._fill()
        out = bytes(self.buf[self.pos : i])
        self.pos = i + len(delim)
        return out

    def take(self, n: int, keep: bool) -> bytes:
        """The next ``n`` bytes, or only their first two when not ``keep``."""
        while len(self.buf) - self.pos < n:
            self._fill()
        out = bytes(self.buf[self.pos : self.pos + (n if keep else 2)])
        self.pos += n
        return out


def _headers(block: bytes) -> dict[str, str]:
    out = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def viewer(
    index: int, port: int, window: Any, deadline: float, decode: bool, conn: Connection
) -> None:
    """Read /stream until the window closes; ``window`` holds its monotonic [start, end]
    (0 while unset). Only the decoding viewer pays for a JPEG decode per frame."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the benchmark ends us, not Ctrl-C
    result = ViewerResult(index)

    def stop() -> bool:
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError("the window never closed")
        return bool(window[1]) and now >= window[1]

    read_timecode: Callable[[bytes], float | None] | None = None
    if decode:
        from titanium.common.timecode import read_timecode_jpeg

        read_timecode = read_timecode_jpeg
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.settimeout(0.5)
            sock.sendall(f"GET /stream HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            parts = _Parts(sock, stop)
            head = parts.until(b"\r\n\r\n")
            status_line, _, rest = head.partition(b"\r\n")
            if b" 200 " not in status_line + b" ":
                raise ConnectionError(f"/stream answered {status_line.decode('latin-1')}")
            ctype = _headers(rest).get("content-type", "")
            boundary = b"--" + ctype.partition("boundary=")[2].strip('"').encode() + b"\r\n"
            parts.until(boundary)
            while not stop():
                hdr = _headers(parts.until(b"\r\n\r\n"))
                length = int(hdr["content-length"])
                body = parts.take(length, keep=read_timecode is not None)
                mono, wall = time.monotonic(), time.time()
                parts.until(boundary)
                result.parts += 1
                if body[:2] != b"\xff\xd8":
                    result.bad_parts += 1
                start, end = window[0], window[1]
                inside = 0 < start <= mono and (not end or mono < end)
                if inside:
                    result.frames += 1
                    result.bytes += length
                if read_timecode is None:
                    continue
                stamp = read_timecode(body)
                if not inside:
                    continue
                if stamp is None:
                    result.unreadable += 1
                    continue
                result.latencies_ms.append((wall - stamp) * 1000.0)
                skew = abs(stamp - float(hdr.get("x-timestamp", "nan"))) * 1000.0
                result.stamp_skew_ms = max(result.stamp_skew_ms, skew)
    except _Stop:
        pass
    except Exception as e:  # reported by the benchmark, which decides what it means
        result.error = f"{type(e).__name__}: {e}"
    conn.send(result)
    conn.close()
