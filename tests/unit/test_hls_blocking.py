"""Blocking playlist reload (LL-HLS _HLS_msn/_HLS_part) and held preload-hint requests,
on a segmenter fed a real libx264 clip from the event loop."""

from __future__ import annotations

import asyncio
import time
from functools import cache

import pytest

from tests.unit.hls_clip import Au, clip
from titanium.services.mjpeg.hls.segmenter import Segmenter, TooFarAhead


@cache
def two_seconds() -> list[Au]:
    return clip(62)


def fed(aus: list[Au]) -> Segmenter:
    seg = Segmenter()
    for au in aus:
        seg.push(au.data, au.pts, au.keyframe, au.wall)
    return seg


def test_a_reload_is_held_until_its_part_exists_and_not_a_frame_longer() -> None:
    """Pins a blocking reload answered at once (hls.js then polls) or one that misses the
    part it waits for: it wakes on the push that completes part 2 of segment 1."""
    aus = two_seconds()

    async def run() -> list[bool]:
        seg = fed(aus[:38])  # segment 0 whole, segment 1 with one part
        assert seg.current is not None and len(seg.current.parts) == 1
        waiter = asyncio.create_task(seg.wait_for(1, 2, timeout=10))
        trace = []
        for au in aus[38:60]:
            seg.push(au.data, au.pts, au.keyframe, au.wall)
            for _ in range(5):  # the woken waiter's own steps
                await asyncio.sleep(0)
            assert seg.current is not None
            assert waiter.done() == (len(seg.current.parts) > 2)
            trace.append(waiter.done())
        assert waiter.exception() is None
        return trace

    trace = asyncio.run(run())
    # Segment 1 starts at the IDR of AU 30; its part 2 is AUs 42-47, closed when AU 47
    # gets its duration from AU 48.
    assert trace.index(True) == 48 - 38


def test_a_reload_times_out_cleanly() -> None:
    """Pins a waiter that hangs past its timeout when the camera stops sending."""

    async def run() -> float:
        seg = fed(two_seconds()[:38])
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await seg.wait_for(1, 3, timeout=0.2)
        return time.monotonic() - start

    assert 0.15 < asyncio.run(run()) < 5


def test_a_segment_more_than_two_ahead_is_refused_at_once() -> None:
    """Pins the LL-HLS rule: _HLS_msn beyond the last segment plus two → 400 at once."""

    async def run() -> None:
        seg = fed(two_seconds()[:38])  # last complete segment: 0
        with pytest.raises(TooFarAhead):
            await seg.wait_for(3, 0, timeout=10)
        with pytest.raises(TimeoutError):
            await seg.wait_for(2, 0, timeout=0.05)  # allowed: held, then times out
        await asyncio.wait_for(seg.wait_for(0, None, timeout=1), 1)  # already there
        await asyncio.wait_for(seg.wait_for(1, 0, timeout=1), 1)
        # Past segment 0's last part means part 0 of segment 1 (LL-HLS 6.2.5.2).
        await asyncio.wait_for(seg.wait_for(0, 9, timeout=1), 1)

    asyncio.run(run())


def test_the_hinted_part_is_held_until_it_is_made() -> None:
    """Pins a preload-hint request answered 404 (hls.js retries in a loop) instead of
    held until the part exists; an unknown part is None at once."""
    aus = two_seconds()

    async def run() -> None:
        seg = fed(aus[:38])
        name = f"part{seg.next_part_id}.mp4"
        task = asyncio.create_task(seg.wait_for_part(name, timeout=10))
        await asyncio.sleep(0)
        assert not task.done()
        for au in aus[38:46]:
            seg.push(au.data, au.pts, au.keyframe, au.wall)
        data = await asyncio.wait_for(task, 1)
        assert data is not None and data == seg.get(name) and data[4:8] == b"moof"
        assert await seg.wait_for_part(f"part{seg.next_part_id + 5}.mp4", timeout=10) is None

    asyncio.run(run())
