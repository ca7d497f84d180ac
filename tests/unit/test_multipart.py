"""The MJPEG bytes clients depend on (PROTOCOLS.md): unquoted boundary, Content-Length and
X-Timestamp in every part, the next boundary right after each JPEG."""

from __future__ import annotations

import re

from titanium.services.mjpeg.multipart import BOUNDARY, OPENING, STREAM_HEADERS, part


def test_content_type_has_an_unquoted_boundary_fluidd_can_parse() -> None:
    ct = STREAM_HEADERS["Content-Type"]
    assert ct == f"multipart/x-mixed-replace;boundary={BOUNDARY}"
    assert re.search(r"boundary=([^;]+)", ct).group(1) == BOUNDARY  # type: ignore[union-attr]
    assert STREAM_HEADERS["Access-Control-Allow-Origin"] == "*"
    assert "no-store" in STREAM_HEADERS["Cache-Control"]


def test_part_bytes_are_exact() -> None:
    jpeg = b"\xff\xd8fake\xff\xd9"
    assert OPENING == b"--titanium-frame\r\n"
    assert part(jpeg, 1700000000.5) == (
        b"Content-Type: image/jpeg\r\nContent-Length: 8\r\n"
        b"X-Timestamp: 1700000000.500000\r\n\r\n"
        b"\xff\xd8fake\xff\xd9\r\n--titanium-frame\r\n"
    )


def test_mainsail_worker_reading_finds_the_whole_jpeg() -> None:
    """Mainsail finds FF D8, reads Content-Length from the text before it, copies that."""
    jpeg = b"\xff\xd8" + bytes(range(256)) * 10 + b"\xff\xd9"
    stream = OPENING + part(jpeg, 1.0) + part(jpeg, 2.0)
    start = stream.index(b"\xff\xd8")
    length = int(re.search(rb"Content-Length: (\d+)", stream[:start]).group(1))  # type: ignore[union-attr]
    assert stream[start : start + length] == jpeg
