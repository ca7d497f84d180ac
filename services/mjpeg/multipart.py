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


def part(jpeg: bytes, timestamp: float) -> bytes:
    """One part: built once per frame and written as is to every viewer."""
    head = (
        f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
        f"X-Timestamp: {timestamp:.6f}\r\n\r\n"
    ).encode()
    return b"".join((head, jpeg, b"\r\n", OPENING))
