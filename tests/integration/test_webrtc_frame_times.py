"""WebRTC's per-frame delays on our side (issue 12): the webrtc service's ``status`` says,
per camera, how long after capture each access unit reached it and was taken by the first
viewer's sender, so the capture → shown split (benchmarks/chromium_latency.py
``--modes rtcstages``) can tell our stages from Chromium's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.integration.conftest import Stack
from tests.integration.governor_client import call
from tests.integration.rtc_client import whep_view
from titanium.common.endpoints import Endpoints

VGA = [{"device": "testpattern", "resolution": "640x480", "fps": 30}]


def test_status_gives_each_frames_delay_from_capture_to_send(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins the per-frame timing: before it the webrtc status had no ``delay`` nor
    ``frame_times``, so nothing said how much of capture → shown was spent before a frame
    left this machine. Bounds are generous (a loaded 2-core machine): only a frame held
    for a second or more, or times out of order, fails it."""
    stack = make_stack(VGA)
    endpoint = Endpoints(stack.runtime_dir).webrtc_rpc()

    async def watch() -> dict[str, Any]:
        viewing = asyncio.ensure_future(whep_view(stack.base, 5.0))
        await asyncio.sleep(4.0)
        status = await asyncio.to_thread(call, endpoint, "status", 5.0, frames=True)
        got = await viewing
        assert got.frames >= 30, got.frames
        return status["cameras"]["cam0"]

    cam = asyncio.run(asyncio.wait_for(watch(), 60))
    delay = cam.get("delay")
    assert delay is not None, cam
    assert 0 < delay["arrive_p50_ms"] <= delay["send_p50_ms"] < 1000, delay
    assert delay["send_max_ms"] < 5000, delay
    times = cam.get("frame_times")
    assert times and len(times) >= 30, times
    sent = [t for t in times if t[3] is not None]
    assert len(sent) >= 30, len(sent)
    # [pts, capture, arrived, taken], all in the order they happened.
    assert all(capture < arrived <= taken for _, capture, arrived, taken in sent), sent[:3]
    assert [t[0] for t in times] == sorted(t[0] for t in times)
    # Without ``frames`` the status stays small: the summary only.
    plain = call(endpoint, "status", 5.0)["cameras"]["cam0"]
    assert "frame_times" not in plain and "delay" in plain
