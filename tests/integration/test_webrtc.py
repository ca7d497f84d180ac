"""WebRTC viewers through the whole stack, with aiortc as the viewer where a browser is not
needed: frames decode, the encoder runs once for all viewers, aiortc never encodes, and a
killed encoder is back within seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from tests.integration.conftest import Stack
from tests.integration.rtc_client import Received, camera_streamer_view, whep_view

VGA = [{"device": "testpattern", "resolution": "640x480", "fps": 30}]


def run(coro: Any, timeout: float = 90) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_whep_viewer_decodes_h264_packed_never_reencoded(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(VGA)

    async def view_and_ask() -> tuple[Received, dict[str, Any]]:
        # /status is read while the viewer watches: once it leaves, the encoder goes idle
        # and names no backend (which made this test fail whenever the read came late).
        viewing = asyncio.ensure_future(whep_view(stack.base, 6.0, timecode=True))
        await asyncio.sleep(4.0)
        status = await asyncio.to_thread(stack.status)
        return await viewing, status

    got, status = run(view_and_ask())
    assert got.codec == "video/H264"
    assert got.frames >= 60, got.frames
    assert (got.width, got.height) == (640, 480)
    assert got.latencies_ms, "no frame carried a readable timecode"
    assert status["webrtc"]["aiortc_encodes"] == 0
    assert status["cameras"]["cam0"]["encoder"]["backend"] == "libx264"
    assert stack.status()["webrtc"]["aiortc_encodes"] == 0


def test_camera_streamer_viewer_decodes(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(VGA)
    got: Received = run(camera_streamer_view(stack.base, 5.0))
    assert got.codec == "video/H264" and got.frames >= 50, got.frames


def test_five_viewers_one_encode(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(VGA)

    async def five() -> list[Received]:
        return list(await asyncio.gather(*(whep_view(stack.base, 6.0) for _ in range(5))))

    before = stack.status()["cameras"]["cam0"]
    results = run(five())
    time.sleep(1.5)  # counters are published once a second
    after = stack.status()["cameras"]["cam0"]
    assert all(r.frames >= 50 for r in results), [r.frames for r in results]
    captured = after["frames"] - before["frames"]
    encoded = after["encoder"]["frames_out"] - (
        before["encoder"]["frames_out"] if before["encoder"] else 0
    )
    # Once per captured frame while anyone watches: never five times.
    assert 0 < encoded <= captured + 35, (encoded, captured)
    assert stack.status()["webrtc"]["aiortc_encodes"] == 0


def test_viewer_recovers_within_10s_after_encoder_sigkill(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(VGA)
    stack.wait_for(lambda st: st["services"].get("encoder-cam0", {}).get("pid") is not None)
    pid = stack.status()["services"]["encoder-cam0"]["pid"]
    killed: dict[str, float] = {}

    async def kill_later() -> None:
        await asyncio.sleep(3.0)
        killed["at"] = time.time()
        os.kill(pid, signal.SIGKILL)

    async def watch() -> Received:
        task = asyncio.ensure_future(kill_later())
        got = await whep_view(stack.base, 16.0, timecode=True)
        await task
        return got

    got: Received = run(watch())
    after = [t for t in got.capture_times if t > killed["at"]]
    assert after, "no frame decoded after the encoder was killed"
    assert min(after) - killed["at"] < 10.0, min(after) - killed["at"]


def test_delete_ends_the_session_and_the_encoder_idles(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(VGA)
    run(whep_view(stack.base, 2.0))
    stack.wait_for(lambda st: not st["webrtc"]["sessions"], timeout=5)
    stack.wait_for(lambda st: st["cameras"]["cam0"]["encoder"]["active"] is False, timeout=8)
