"""The bytes of an MJPEG stream, exactly as PROTOCOLS.md describes them.

``multipart/x-mixed-replace;boundary=NAME`` (unquoted: Fluidd parses ``boundary=([^;]+)``);
the body opens with ``--NAME\\r\\n`` and every part is its headers, the JPEG, and the next
boundary at once: Fluidd shows a frame only when the boundary after it has arrived.
"""

from __future__ import annotations

BOUNDARY = "titanium-frame"
CONTENT_TYPE = f"multipart/x-mixed-replace;boundary={BOUNDARY}"
STREAM_HEADERS = {
    "Content-Type": CONTENT_TYPE,
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Access-Control-Allow-Origin": "*",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}
OPENING = f"--{BOUNDARY}\r\n".encode()


def _head(jpeg: bytes, timestamp: float) -> bytes:
    return (
        f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
        f"X-Timestamp: {timestamp:.6f}\r\n\r\n"
    ).encode()


def part(jpeg: bytes, timestamp: float) -> bytes:
    """One part: its headers, the JPEG and the next boundary."""
    return b"".join((_head(jpeg, timestamp), jpeg, b"\r\n", OPENING))


def chunk(jpeg: bytes, timestamp: float) -> tuple[bytes, int]:
    """:func:`part` framed as one HTTP/1.1 chunk, and where the bare part starts in it (it
    ends 2 bytes before the end): built once per frame and written as is to every viewer's
    transport, chunked (HTTP/1.1) or not (HTTP/1.0), with no copy per viewer."""
    head = _head(jpeg, timestamp)
    size = f"{len(head) + len(jpeg) + 2 + len(OPENING):x}\r\n".encode()
    return b"".join((size, head, jpeg, b"\r\n", OPENING, b"\r\n")), len(size)
