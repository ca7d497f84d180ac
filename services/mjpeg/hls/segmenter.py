"""LL-HLS from the encoder's access units: a bounded window of fMP4 segments cut at IDRs,
each made of ~200 ms parts, the playlists that list them, and blocking playlist reload.

Fed from the front door's event loop (push is synchronous and cheap: one fragment per part);
waiters are woken by each new part. Samples get their duration from the next AU's pts, so a
sample is muxed one frame after it arrives.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable

from titanium.common.h264 import NAL_PPS, NAL_SPS, iter_nals
from titanium.services.mjpeg.hls import fmp4, playlist
from titanium.services.mjpeg.hls.sps import codec_string, picture_size
from titanium.services.mjpeg.hls.window import Part, Segment

log = logging.getLogger("titanium.mjpeg.hls")

# MediaMTX's defaults (hlsSegmentDuration, hlsPartDuration, hlsSegmentCount).
SEGMENT_SECONDS = 1.0
PART_SECONDS = 0.2
SEGMENT_COUNT = 7
# A source that stops sending IDRs must not grow one segment without bound.
MAX_SEGMENT_SECONDS = 10.0
NAME = re.compile(r"(init|seg|part)(\d+)\.mp4")


class TooFarAhead(ValueError):
    """A blocking reload asked for a segment more than two past the playlist's last one:
    the LL-HLS spec has the server answer 400 at once."""


class Segmenter:
    """One camera's LL-HLS window. ``push`` each AU; serve ``media_playlist``,
    ``multivariant_playlist`` and ``get(name)``; hold reloads with ``wait_for``."""

    def __init__(
        self,
        segment_seconds: float = SEGMENT_SECONDS,
        part_seconds: float = PART_SECONDS,
        segment_count: int = SEGMENT_COUNT,
        media_name: str = "stream.m3u8",
    ) -> None:
        self.segment_ticks = round(segment_seconds * fmp4.TIMESCALE)
        self.part_ticks = round(part_seconds * fmp4.TIMESCALE)
        self.segment_count = segment_count
        self.media_name = media_name
        self.segments: deque[Segment] = deque()
        self.current: Segment | None = None
        self.next_msn = 0
        self.next_part_id = 0
        self.init_version = -1
        self.init = b""
        self.codecs = ""
        self.width = self.height = 0
        self._params = (b"", b"")
        self._pending: tuple[bytes, int, bool, float] | None = None  # avcc, dts, key, wall
        self._samples: list[fmp4.Sample] = []  # of the part being built
        # PART-TARGET must not change (RFC 8216bis 4.4.3.7): it only grows, and only when a
        # part comes out longer than any before (capture jitter, a dropped frame).
        self._part_target = self.part_ticks
        self._last_duration = fmp4.TIMESCALE // 30
        self._changed: asyncio.Event | None = None

    # Feeding

    def push(self, au: bytes, pts: int, keyframe: bool, wall: float) -> None:
        """One Annex-B access unit, its 90 kHz pts and capture wall time (seconds)."""
        if keyframe and not self._new_params(au):
            return
        if self.init_version < 0:
            return  # nothing decodable before the first IDR
        if self._pending is not None:
            data, dts, key, when = self._pending
            if pts <= dts:  # a clock step: keep decode times increasing
                pts = dts + self._last_duration
            self._last_duration = pts - dts
            self._add(fmp4.Sample(data, dts, pts - dts, key), when)
        self._pending = (fmp4.avcc_sample(au), pts, keyframe, wall)

    def _new_params(self, au: bytes) -> bool:
        """Learns SPS/PPS from an IDR; a change starts a new init segment and window.
        False if the IDR carries none and none are known."""
        sps = pps = b""
        for nal_type, start, end in iter_nals(au):
            if nal_type == NAL_SPS:
                sps = au[start:end]
            elif nal_type == NAL_PPS:
                pps = au[start:end]
        if not (sps and pps):
            return self.init_version >= 0
        if (sps, pps) == self._params:
            return True
        width, height = picture_size(sps)
        if self.init_version >= 0:
            log.info("new SPS/PPS (%dx%d): a new init segment and window", width, height)
        # Old segments cannot be decoded with the new init: the window starts again, the
        # sequence numbers go on.
        self.segments.clear()
        self.current = None
        self._pending = None
        self._samples = []
        self._params = (sps, pps)
        self.width, self.height = width, height
        self.codecs = codec_string(sps)
        self.init = fmp4.init_segment(sps, pps, width, height)
        self.init_version += 1
        return True

    def _add(self, sample: fmp4.Sample, wall: float) -> None:
        cur = self.current
        if cur is not None:
            # The IDR nearest the target counts: capture jitter must not push a segment
            # that is a few ms short on to the IDR after.
            built = cur.duration + self._built() + sample.duration // 2
            long_enough = built >= self.segment_ticks
            too_long = cur.duration + self._built() >= MAX_SEGMENT_SECONDS * fmp4.TIMESCALE
            if (sample.keyframe and long_enough) or too_long:
                self._close_part()
                self._close_segment()
                cur = None
        if cur is None:
            cur = self.current = Segment(self.next_msn, wall)
            self.next_msn += 1
        self._samples.append(sample)
        # Close at the sample boundary nearest the part target.
        if self._built() + sample.duration // 2 >= self.part_ticks:
            self._close_part()

    def _built(self) -> int:
        return sum(s.duration for s in self._samples)

    def _close_part(self) -> None:
        if not self._samples or self.current is None:
            return
        part = Part(
            self.next_part_id,
            fmp4.fragment(self.next_part_id + 1, self._samples),
            self._built(),
            self._samples[0].keyframe,
        )
        self.next_part_id += 1
        self._samples = []
        if part.duration > self._part_target:
            if self.segments:  # once served, a change is worth knowing about
                log.info(
                    "part target %.3f s → %.3f s",
                    self._part_target / fmp4.TIMESCALE,
                    part.duration / fmp4.TIMESCALE,
                )
            self._part_target = part.duration
        self.current.parts.append(part)
        self._wake()

    def _close_segment(self) -> None:
        if self.current is None or not self.current.parts:
            return
        self.segments.append(self.current)
        self.current = None
        while len(self.segments) > self.segment_count:
            self.segments.popleft()
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # Serving

    @property
    def ready(self) -> bool:
        """A playlist can be served: one complete segment exists."""
        return bool(self.segments)

    @property
    def part_target(self) -> float:
        """PART-TARGET in seconds: the longest part so far, at least the configured one."""
        return self._part_target / fmp4.TIMESCALE

    def _all(self) -> list[Segment]:
        return [*self.segments, *([self.current] if self.current else [])]

    def media_playlist(self, query: str = "") -> str | None:
        """The LL-HLS media playlist; ``query`` (the request's, less _HLS_*) goes into
        every URI. None until the first segment is complete."""
        if not self.ready:
            return None
        return playlist.media(
            list(self.segments),
            self.current,
            self.next_part_id,
            self.part_target,
            f"init{self.init_version}.mp4",
            query,
        )

    def multivariant_playlist(self, query: str = "") -> str | None:
        """The multivariant playlist naming the media one; None until ready."""
        if not self.ready:
            return None
        peak = max(s.size * 8 * fmp4.TIMESCALE // max(1, s.duration) for s in self.segments)
        return playlist.multivariant(
            peak, self.codecs, self.width, self.height, self.media_name, query
        )

    def get(self, name: str) -> bytes | None:
        """The bytes of ``init<v>.mp4``, ``seg<msn>.mp4`` or ``part<id>.mp4``; None when
        unknown, not yet made, or gone from the window."""
        m = NAME.fullmatch(name)
        if m is None:
            return None
        kind, n = m.group(1), int(m.group(2))
        if kind == "init":
            return self.init if n == self.init_version and self.init else None
        if kind == "seg":
            return next((s.data() for s in self.segments if s.msn == n), None)
        for seg in self._all():
            if seg.parts and seg.parts[0].id <= n <= seg.parts[-1].id:
                return seg.parts[n - seg.parts[0].id].data
        return None

    def has_part(self, msn: int, part: int | None) -> bool:
        """Whether the playlist already holds segment ``msn`` (whole, or up to ``part``).
        A part index past a complete segment's last is part 0 of the next (LL-HLS 6.2.5.2)."""
        if msn < self.next_msn - 1 or (msn == self.next_msn - 1 and self.current is None):
            if part is None:
                return True
            seg = next((s for s in self.segments if s.msn == msn), None)
            if seg is None or part < len(seg.parts):
                return True
            return self.has_part(msn + 1, 0)
        if self.current is not None and msn == self.current.msn and part is not None:
            return part < len(self.current.parts)
        return False

    async def wait_for(self, msn: int, part: int | None, timeout: float) -> None:
        """Returns once the playlist holds part ``part`` of segment ``msn`` (the whole
        segment if ``part`` is None). Raises TooFarAhead at once for a segment more than
        two past the last complete one, TimeoutError after ``timeout`` seconds."""
        last = self.next_msn - 1 if self.current is None else self.next_msn - 2
        if msn > last + 2:
            raise TooFarAhead(f"segment {msn} is more than two past the last one ({last})")
        await self._wait(lambda: self.ready and self.has_part(msn, part), timeout)

    async def wait_ready(self, timeout: float) -> None:
        """Returns once the first segment is complete; TimeoutError after ``timeout`` s."""
        await self._wait(lambda: self.ready, timeout)

    async def wait_for_part(self, name: str, timeout: float) -> bytes | None:
        """The bytes of ``name``, waiting up to ``timeout`` s when it is the hinted next
        part (a preload-hint request is held until the part exists). None if unknown."""
        m = NAME.fullmatch(name)
        if m and m.group(1) == "part" and int(m.group(2)) == self.next_part_id:
            n = int(m.group(2))
            await self._wait(lambda: self.next_part_id > n, timeout)
        return self.get(name)

    async def _wait(self, done: Callable[[], bool], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("the part did not come in time")
            if self._changed is None:
                self._changed = asyncio.Event()
            await asyncio.wait_for(self._changed.wait(), remaining)
