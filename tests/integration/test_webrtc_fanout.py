"""Fan-out (issue 12): with several WebRTC viewers, each access unit of a camera is split
into RTP payloads once, not once per viewer, and every viewer still decodes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.integration.conftest import Stack
from tests.integration.rtc_client import Received, whep_view

VGA = [{"device": "testpattern", "resolution": "640x480", "fps": 30}]


def test_three_viewers_share_one_packetizing_per_frame(make_stack: Callable[..., Stack]) -> None:
    """Pins the per-viewer packetizing: before fan-out each viewer's aiortc sender split
    every AU into NAL units and STAP-A/FU-A payloads again (three viewers, three times the
    work), and the webrtc status counted none of it (no ``packetized``)."""
    stack = make_stack(VGA)

    async def three() -> tuple[list[Received], dict[str, Any]]:
        viewing = asyncio.gather(*(whep_view(stack.base, 6.0, timecode=True) for _ in range(3)))
        await asyncio.sleep(4.5)  # all three are sending by now
        status = await asyncio.to_thread(stack.status)
        return list(await viewing), status

    results, status = asyncio.run(asyncio.wait_for(three(), 90))
    assert all(r.frames >= 50 for r in results), [r.frames for r in results]
    assert all(r.latencies_ms for r in results), "a viewer decoded no readable timecode"
    webrtc = status["webrtc"]
    cam = status["cameras"]["cam0"]
    sent = sum(s["frames_sent"] for s in webrtc["sessions"] if s["camera"] == "cam0")
    assert cam["webrtc_viewers"] == 3, cam
    # Once per AU read, whatever the viewers: never once per viewer.
    packetized, taken = cam.get("webrtc_packetized"), cam.get("webrtc_frames")
    assert packetized and taken and 0 < packetized <= taken, (packetized, taken)
    assert sent >= 2 * packetized, (sent, packetized)
    assert webrtc["aiortc_encodes"] == 0


def test_three_viewers_share_one_rtp_serialization_per_frame(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins the per-viewer RTP build: aiortc's send loop built an ``RtpPacket``, its header
    extensions and its bytes for every packet of every viewer (the sessions reported no
    ``rtp_built``/``rtp_packets``). Now each AU is serialized once per camera and the other
    viewers only patch sequence number, timestamp, SSRC and abs-send-time into a copy, and
    every viewer still decodes: sequence numbers and timestamps stay continuous per viewer."""
    stack = make_stack(VGA)

    async def three() -> tuple[list[Received], dict[str, Any]]:
        viewing = asyncio.gather(*(whep_view(stack.base, 6.0, timecode=True) for _ in range(3)))
        await asyncio.sleep(4.5)
        status = await asyncio.to_thread(stack.status)
        return list(await viewing), status

    results, status = asyncio.run(asyncio.wait_for(three(), 90))
    assert all(r.frames >= 50 for r in results), [r.frames for r in results]
    assert all(r.latencies_ms for r in results), "a viewer decoded no readable timecode"
    sessions = [s for s in status["webrtc"]["sessions"] if s["camera"] == "cam0"]
    assert len(sessions) == 3, sessions
    built = sum(s["rtp_built"] for s in sessions)
    sent = sum(s["frames_sent"] for s in sessions)
    taken = status["cameras"]["cam0"]["webrtc_frames"]
    # The same layout for all three (aiortc clients): one serialization per AU read.
    assert 0 < built <= taken, (built, taken)
    assert sent >= 2 * built, (sent, built)
    assert all(s["rtp_packets"] >= s["frames_sent"] > 0 for s in sessions), sessions
    assert status["webrtc"]["aiortc_encodes"] == 0
