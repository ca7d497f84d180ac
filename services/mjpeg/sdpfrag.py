"""Trickled ICE candidates in a WHEP PATCH body (``application/trickle-ice-sdpfrag``,
RFC 8840): ``a=candidate:`` lines, grouped under the ``a=mid:`` of their media section."""

from __future__ import annotations

from typing import Any


def parse_sdpfrag(text: str) -> list[dict[str, Any]]:
    """The candidates as browser-style dicts ``{candidate, sdpMid, sdpMLineIndex}``.
    An ICE restart (new ufrag without candidates) is not supported: ValueError."""
    candidates: list[dict[str, Any]] = []
    mid: str | None = None
    index = -1
    saw_media = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            saw_media = True
            index += 1
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        elif line.startswith("a=candidate:"):
            candidates.append(
                {
                    "candidate": line[len("a=") :],
                    "sdpMid": mid,
                    "sdpMLineIndex": index if saw_media else 0,
                }
            )
        elif line and not line.startswith(("a=", "m=", "c=")):
            raise ValueError(f"not an SDP fragment line: {line[:60]!r}")
    return candidates
