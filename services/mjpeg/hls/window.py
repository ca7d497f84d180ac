"""The segments and parts an LL-HLS muxer keeps: plain records, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from titanium.services.mjpeg.hls.fmp4 import TIMESCALE


@dataclass(frozen=True)
class Part:
    """One fMP4 fragment (moof+mdat): a part, and a piece of its segment."""

    id: int  # counts parts across the whole stream: its URI and the preload hint's
    data: bytes
    duration: int  # 90 kHz ticks
    independent: bool  # starts with an IDR

    @property
    def seconds(self) -> float:
        return self.duration / TIMESCALE


@dataclass
class Segment:
    """A run of parts, the first one normally starting at an IDR."""

    msn: int  # media sequence number
    wall: float  # capture time of its first sample, seconds since the epoch
    parts: list[Part] = field(default_factory=list)

    @property
    def duration(self) -> int:
        return sum(p.duration for p in self.parts)

    @property
    def seconds(self) -> float:
        return self.duration / TIMESCALE

    @property
    def size(self) -> int:
        return sum(len(p.data) for p in self.parts)

    def data(self) -> bytes:
        # Joined on request: a segment is its parts' fragments back to back, so keeping
        # only the parts holds each byte once.
        return b"".join(p.data for p in self.parts)
