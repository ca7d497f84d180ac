"""An aiortc viewer for tests and benchmarks: WHEP or camera-streamer signalling over real
HTTP, H.264 decoded by aiortc, frames counted and their timecodes read."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from titanium.common.timecode import read_timecode


@dataclass
class Received:
    frames: int = 0
    width: int = 0
    height: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    capture_times: list[float] = field(default_factory=list)  # from the timecode
    frame_times: list[float] = field(default_factory=list)  # wall clock at each frame
    latency_times: list[float] = field(default_factory=list)  # wall clock at each latency
    session_url: str | None = None
    codec: str = ""
    sizes: list[tuple[int, int]] = field(default_factory=list)  # each new size, in order


async def _consume(track: MediaStreamTrack, got: Received, seconds: float, timecode: bool) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            frame = await asyncio.wait_for(track.recv(), max(0.1, end - time.monotonic()))
        except (TimeoutError, MediaStreamError):
            break
        now = time.time()
        got.frames += 1
        got.frame_times.append(now)
        got.width, got.height = frame.width, frame.height  # type: ignore[union-attr]
        if not got.sizes or got.sizes[-1] != (got.width, got.height):
            got.sizes.append((got.width, got.height))
        if timecode:
            luma = frame.to_ndarray(format="gray")  # type: ignore[union-attr]
            captured = read_timecode(luma)
            if captured is not None:
                got.latencies_ms.append((now - captured) * 1000)
                got.latency_times.append(now)
                got.capture_times.append(captured)


async def track_frames(tracks: asyncio.Queue[MediaStreamTrack], seconds: float) -> Received:
    """Frames of the first track ``tracks`` gets (within 10 s), decoded for ``seconds``."""
    got = Received()
    await _consume(await asyncio.wait_for(tracks.get(), 10), got, seconds, False)
    return got


def _codec(pc: RTCPeerConnection) -> str:
    for t in pc.getTransceivers():
        if t.kind == "video" and t._codecs:
            return str(t._codecs[0].mimeType)
    return ""


async def recvonly_offer() -> RTCPeerConnection:
    """A peer connection (no ICE servers) with one recvonly video transceiver and its offer
    set as the local description: what a WHEP player POSTs."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc


async def whep_view(
    base: str, seconds: float, camera: str | None = None, timecode: bool = False
) -> Received:
    """Play ``base``/whep for ``seconds`` like a WHEP player (recvonly video)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    got = Received()
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    pc.on("track", lambda t: tracks.put_nowait(t))
    await pc.setLocalDescription(await pc.createOffer())
    url = f"{base}/whep" + (f"?camera={camera}" if camera else "")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url, data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
        ) as r:
            assert r.status == 201, await r.text()
            got.session_url = urllib.parse.urljoin(url, r.headers["Location"])
            answer = await r.text()
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        got.codec = _codec(pc)
        track = await asyncio.wait_for(tracks.get(), 10)
        await _consume(track, got, seconds, timecode)
        async with http.delete(got.session_url) as r:
            assert r.status in (200, 204), r.status
    await pc.close()
    return got


async def camera_streamer_view(base: str, seconds: float) -> Received:
    """Play ``base``/webrtc the way Mainsail does: request, answer, keep-alive pongs."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    got = Received()
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    pc.on("track", lambda t: tracks.put_nowait(t))

    @pc.on("datachannel")
    def on_channel(channel: Any) -> None:
        @channel.on("message")
        def on_message(message: Any) -> None:
            if message == "ping":
                channel.send("pong")

    async with aiohttp.ClientSession() as http:
        # Mainsail sends the request without a Content-Type header.
        body = json.dumps({"type": "request", "iceServers": [], "keepAlive": True})
        async with http.post(
            f"{base}/webrtc", data=body.encode(), skip_auto_headers={"Content-Type"}
        ) as r:
            assert r.status == 200, await r.text()
            offer = await r.json(content_type=None)
        assert offer["type"] == "offer" and offer["keepAlive"] is True
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = {"type": "answer", "id": offer["id"], "sdp": pc.localDescription.sdp}
        async with http.post(f"{base}/webrtc", data=json.dumps(answer)) as r:
            assert r.status == 200, await r.text()
        got.codec = _codec(pc)
        track = await asyncio.wait_for(tracks.get(), 10)
        await _consume(track, got, seconds, False)
    await pc.close()
    return got


class HeldPeer:
    """A WHEP viewer that stays connected, in its own thread and loop, until the server
    ends the session: ``ended`` is set when its connection closes or its track ends.
    ``url`` is the WHEP endpoint when it is not ``base``/whep (the Mirage proxy's);
    ``last_frame`` is when the latest frame arrived (monotonic)."""

    def __init__(self, base: str, url: str | None = None) -> None:
        self.base = base
        self.url = url or f"{base}/whep"
        self.frames = 0
        self.last_frame = 0.0
        self.state = "new"
        self.error = ""
        self.playing = threading.Event()
        self.ended = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))
        self._thread.daemon = True
        self._thread.start()

    async def _run(self) -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._pc = pc
        pc.addTransceiver("video", direction="recvonly")
        tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        pc.on("track", lambda t: tracks.put_nowait(t))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            self.state = pc.connectionState
            if self.state in ("closed", "failed"):
                self.ended.set()

        try:
            await pc.setLocalDescription(await pc.createOffer())
            headers = {"Content-Type": "application/sdp"}
            async with (
                aiohttp.ClientSession() as http,
                http.post(self.url, data=pc.localDescription.sdp, headers=headers) as r,
            ):
                assert r.status == 201, await r.text()
                answer = await r.text()
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            track = await asyncio.wait_for(tracks.get(), 10)
            while True:
                await track.recv()
                self.frames += 1
                self.last_frame = time.monotonic()
                self.playing.set()
        except MediaStreamError:
            pass
        except Exception as e:  # reported to the test, which asserts on it
            self.error = repr(e)
        finally:
            self.ended.set()
            await pc.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._pc.close()))
            self._thread.join(10)
