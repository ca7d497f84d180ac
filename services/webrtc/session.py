"""One viewer: an aiortc peer connection sending one camera's encoded track, the
camera-streamer keep-alive channel, and RTCP feedback turned into messages for the encoder."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel, RTCIceCandidate, RTCPeerConnection, RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

from titanium.services.webrtc.backlog import Pacer, backlog_limit, transport_backlog
from titanium.services.webrtc.rtpsend import RtpLoop
from titanium.services.webrtc.track import EncodedVideoTrack

log = logging.getLogger("titanium.webrtc.session")
KEEPALIVE_PERIOD = 1.0
KEEPALIVE_TIMEOUT = 30.0  # camera-streamer's: a peer silent this long is gone
CONNECT_TIMEOUT = 30.0


class Feedback:
    """Where a session's RTCP feedback goes (the manager turns it into bus messages)."""

    def __init__(
        self,
        keyframe: Callable[[str], None],
        bitrate: Callable[[Session, int, str], None],
    ) -> None:
        self.keyframe = keyframe
        self.bitrate = bitrate


@dataclass(frozen=True)
class Owner:
    """Who opened a session: the id of its token (None with auth off), which ends it when
    revoked, and the viewer's address; both count against the session caps."""

    token: str | None = None
    address: str | None = None


class Session:
    def __init__(
        self,
        camera: str,
        dialect: str,
        pc: RTCPeerConnection,
        track: EncodedVideoTrack,
        feedback: Feedback,
        priority: str = "medium",
        owner: Owner = Owner(),
    ) -> None:
        self.id = secrets.token_urlsafe(12)
        self.camera = camera
        self.dialect = dialect  # 'whep', 'camera-streamer', 'octoprint', 'mirage'
        # Through the Mirage proxy: from anywhere, over a link of unknown width (its hints
        # are floored while a LAN viewer watches, manager.py).
        self.remote = dialect == "mirage"
        self.priority = priority  # common/priority.py: who gets shed first
        self.owner = owner
        self.pc = pc
        self.track = track
        self.created = time.monotonic()
        self.connected_at: float | None = None
        self.last_pong: float | None = None
        self.pending: list[RTCIceCandidate] = []  # candidates that came before the answer
        self.bitrate_hint: tuple[int, float] | None = None
        self._feedback = feedback
        self._ping: asyncio.Task[None] | None = None
        self.closed = False
        self.sender: RTCRtpSender | None = None
        self.pacer: Pacer | None = None
        self.rtp: RtpLoop | None = None
        pc.on("connectionstatechange", self._on_state)

    def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("session %s (%s, %s): %s", self.id, self.camera, self.dialect, state)
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            if self.pacer is not None:
                self.pacer.attach()

    def watch_rtcp(self, sender: RTCRtpSender) -> None:
        """Forward PLI/FIR, REMB and receiver-report loss. With pre-encoded packets aiortc's
        own reactions (forcing its encoder's keyframe, setting its bitrate) reach nothing,
        and it offers no hook: the sender's RTCP handler is wrapped, per instance."""
        self.sender = sender
        self.pacer = Pacer(sender, self._backlog_limit)
        self.rtp = RtpLoop(sender, self.track, self.pacer)
        self.rtp.install()
        original = sender._handle_rtcp_packet
        ssrc = sender._ssrc

        async def handle(packet: Any) -> None:
            if isinstance(packet, RtcpPsfbPacket):
                if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                    self._feedback.keyframe("pli" if packet.fmt == RTCP_PSFB_PLI else "fir")
                elif packet.fmt == RTCP_PSFB_APP:
                    try:
                        bitrate, _ = unpack_remb_fci(packet.fci)
                    except ValueError:
                        bitrate = 0
                    if bitrate:
                        self._feedback.bitrate(self, bitrate, "remb")
            elif isinstance(packet, RtcpRrPacket | RtcpSrPacket):
                for report in packet.reports:
                    if report.ssrc == ssrc and report.fraction_lost > 25:  # > 10 % lost
                        self._feedback.bitrate(self, 0, "loss")
            await original(packet)

        sender._handle_rtcp_packet = handle  # type: ignore[method-assign]

    def _backlog_limit(self) -> int:
        status = self.track.feed.status
        return backlog_limit(status.bitrate if status is not None else 0)

    def start_keepalive(self, channel: RTCDataChannel) -> None:
        """camera-streamer's keep-alive: "ping" every second, the client answers "pong"."""
        self.last_pong = time.monotonic()

        @channel.on("message")
        def on_message(message: object) -> None:
            if message == "pong":
                self.last_pong = time.monotonic()

        async def ping() -> None:
            while True:
                await asyncio.sleep(KEEPALIVE_PERIOD)
                if channel.readyState == "open":
                    channel.send("ping")

        self._ping = asyncio.ensure_future(ping())

    def expired(self, now: float) -> str | None:
        """Why this session should end now, or None."""
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            return f"connection {state}"
        if self.connected_at is None and now - self.created > CONNECT_TIMEOUT:
            return f"not connected after {CONNECT_TIMEOUT:.0f} s"
        if self.last_pong is not None and now - self.last_pong > KEEPALIVE_TIMEOUT:
            return f"no keep-alive pong for {KEEPALIVE_TIMEOUT:.0f} s"
        return None

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._ping is not None:
            self._ping.cancel()
        self.track.stop()
        await self.pc.close()

    def describe(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "id": self.id,
            "camera": self.camera,
            "dialect": self.dialect,
            "remote": self.remote,
            "priority": self.priority,
            "token": self.owner.token,
            "address": self.owner.address,
            "state": self.pc.connectionState,
            "age_s": round(now - self.created, 1),
            "frames_sent": self.track.sent,
            "frames_skipped": self.track.skipped,
            "bitrate_hint": self.bitrate_hint[0] if self.bitrate_hint else None,
            "backlog_bytes": transport_backlog(self.sender) if self.sender else 0,
            "paced": self.pacer.waits if self.pacer else 0,
            "rtp_packets": self.rtp.packets if self.rtp else 0,
            "rtp_built": self.rtp.built if self.rtp else 0,
        }
