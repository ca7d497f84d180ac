"""Our track's RTP send loop, in place of aiortc's ``RTCRtpSender._run_rtp``: each access unit
is serialized into RTP packets once per camera (``AuRtp``), and per viewer only the sequence
number, timestamp, SSRC and abs-send-time bytes are patched into a copy before SRTP.

aiortc's loop builds an ``RtpPacket``, its header extensions and its bytes per packet per
viewer, and awaits three coroutines per packet down to ``sendto``; that was most of an extra
viewer's cost (docs/performance.md, "WebRTC fan-out"). What the viewer relies on is kept:

- the NACK history (``_retransmit`` is replaced too: it re-parses the packet we sent and
  wraps it for RTX as aiortc does, through the paced ``_send_rtp``);
- the sender's counters its RTCP sender reports are built from (packets, payload octets,
  the last packet's NTP and RTP timestamps) and the DTLS transport's stats;
- the Pacer's wait (backlog.py), checked before each frame and every ``PACE_EVERY`` packets
  instead of per packet;
- per-viewer sequence numbers and RTP timestamp origin, continuous across the AUs the track
  skips (track.py), and PLI/REMB handling, which stays in session.py's RTCP wrapper.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from struct import pack, pack_into
from typing import TYPE_CHECKING, Any

from aioice.ice import StunProtocol
from aiortc import clock
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, RtpPacket, wrap_rtx
from aiortc.utils import random32, uint16_add

if TYPE_CHECKING:
    import av

    from titanium.services.webrtc.backlog import Pacer
    from titanium.services.webrtc.track import EncodedVideoTrack

log = logging.getLogger("titanium.webrtc.rtpsend")
PACE_EVERY = 8  # packets between backlog checks within a frame (~10 kB at 1200 B)
_PACKER = H264Encoder()  # pack() keeps no state: one for every camera

# A viewer's layout: payload type and header extension block (abs-send-time zeroed). Viewers
# with the same layout (the same browser) share one serialization of each AU.
Layout = tuple[int, bytes]


class AuRtp:
    """One AU's RTP packets: its payloads (NAL splitting, STAP-A/FU-A) made once, serialized
    once per layout, whatever the number of viewers. ``on_pack`` is told when the payloads
    are made (the feed's ``packetized`` count)."""

    def __init__(self, packet: av.Packet, on_pack: Callable[[], None]) -> None:
        self.packet = packet
        self._on_pack = on_pack
        self._payloads: list[bytes] | None = None
        self._built: dict[Layout, tuple[list[bytes], int]] = {}

    def packets(self, layout: Layout) -> tuple[list[bytes], bool]:
        """(the packets, True if this call built them): header with zero sequence number,
        timestamp and SSRC, then extensions and payload."""
        got = self._built.get(layout)
        if got is not None:
            return got[0], False
        if self._payloads is None:
            self._payloads, _ = _PACKER.pack(self.packet)
            self._on_pack()
        payloads = self._payloads
        pt, ext = layout
        first = 0x90 if ext else 0x80  # version 2, extension bit
        last = len(payloads) - 1
        out = [
            pack("!BBHLL", first, (i == last) << 7 | pt, 0, 0, 0) + ext + p
            for i, p in enumerate(payloads)
        ]
        self._built[layout] = (out, 12 + len(ext))
        return out, True

    def header_size(self, layout: Layout) -> int:
        return self._built[layout][1]


def _layout(sender: Any, codec: RTCRtpCodecParameters) -> tuple[Layout, int | None]:
    """This sender's layout and where abs-send-time's 3 bytes sit in its packets (found by
    serializing twice with different values: robust to any map, playout.py's included)."""
    extmap = sender._RTCRtpSender__rtp_header_extensions_map
    mid = sender._RTCRtpSender__mid

    def block(ast: int) -> bytes:
        profile, value = extmap.set(HeaderExtensions(mid=mid, abs_send_time=ast))
        return pack("!HH", profile, len(value) >> 2) + value if value else b""

    zero, ones = block(0), block(0xFFFFFF)
    diff = [i for i, (a, b) in enumerate(zip(zero, ones, strict=True)) if a != b]
    offset = 12 + diff[0] if len(diff) == 3 and diff[2] == diff[0] + 2 else None
    assert codec.payloadType is not None  # negotiated before send()
    return (codec.payloadType, zero), offset


class RtpLoop:
    """The per-viewer half: patch, protect, send. ``built`` counts the AUs this viewer
    serialized itself (the first viewer of a layout to send an AU); ``packets`` those sent."""

    def __init__(self, sender: Any, track: EncodedVideoTrack, pacer: Pacer | None) -> None:
        self.sender = sender
        self.track = track
        self.pacer = pacer
        self.packets = 0
        self.built = 0
        self._history: dict[int, tuple[int, bytes]] = {}

    def install(self) -> None:
        """Before ``sender.send()`` (aiortc calls it once DTLS is up): it starts
        ``self._run_rtp`` by attribute, so an instance attribute takes its place."""
        self.sender._run_rtp = self.run
        self.sender._retransmit = self.retransmit

    async def run(self, codec: RTCRtpCodecParameters) -> None:
        s = self.sender
        s._RTCRtpSender__rtp_started.set()
        layout, ast_at = _layout(s, codec)
        seq = random_sequence_number()
        origin = random32()
        ssrc = s._ssrc
        history = self._history
        try:
            while self.track.readyState == "live":
                au = await self.track.next_au()
                if not s._enabled:
                    continue
                templates, built = au.rtp.packets(layout)
                self.built += built
                header = au.rtp.header_size(layout)
                ts = (origin + au.pts) & 0xFFFFFFFF
                if self.pacer is not None:
                    await self.pacer.wait()
                dtls = s.transport
                sent_bytes = octets = 0
                for i, tpl in enumerate(templates):
                    if i and i % PACE_EVERY == 0 and self.pacer is not None:
                        await self.pacer.wait()
                        dtls = s.transport
                    if dtls._state != State.CONNECTED:
                        raise ConnectionError("DTLS not connected")
                    buf = bytearray(tpl)
                    pack_into("!HLL", buf, 2, seq, ts, ssrc)
                    if ast_at is not None:
                        ast = (clock.current_ntp_time() >> 14) & 0xFFFFFF
                        buf[ast_at : ast_at + 3] = ast.to_bytes(3, "big")
                    raw = bytes(buf)
                    history[seq % RTP_HISTORY_SIZE] = (seq, raw)
                    data = dtls._tx_srtp.protect(raw)
                    await _send(dtls, data)
                    sent_bytes += len(data)
                    octets += len(tpl) - header
                    seq = uint16_add(seq, 1)
                n = len(templates)
                self.packets += n
                dtls._RTCDtlsTransport__tx_bytes += sent_bytes
                dtls._RTCDtlsTransport__tx_packets += n
                # What aiortc's loop leaves after a frame's last packet, for the SR.
                s._RTCRtpSender__ntp_timestamp = clock.current_ntp_time()
                s._RTCRtpSender__rtp_timestamp = ts
                s._RTCRtpSender__octet_count += octets
                s._RTCRtpSender__packet_count += n
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:  # stop() waits for __rtp_exited: never leave without it
            log.exception("RTP send loop failed")
        self.track.stop()
        s._RTCRtpSender__rtp_exited.set()

    async def retransmit(self, sequence_number: int) -> None:
        """aiortc's ``_retransmit`` over our history of sent bytes."""
        s = self.sender
        entry = self._history.get(sequence_number % RTP_HISTORY_SIZE)
        if entry is None or entry[0] != sequence_number:
            return
        extmap = s._RTCRtpSender__rtp_header_extensions_map
        raw = entry[1]
        rtx_pt = s._RTCRtpSender__rtx_payload_type
        if rtx_pt is not None:
            packet = wrap_rtx(
                RtpPacket.parse(raw, extmap),
                payload_type=rtx_pt,
                sequence_number=s._RTCRtpSender__rtx_sequence_number,
                ssrc=s._rtx_ssrc,
            )
            s._RTCRtpSender__rtx_sequence_number = uint16_add(
                s._RTCRtpSender__rtx_sequence_number, 1
            )
            raw = packet.serialize(extmap)
        await s.transport._send_rtp(raw)


async def _send(dtls: Any, data: bytes) -> None:
    """The nominated pair's socket directly when it is a plain UDP one (no coroutine per
    packet); aioice's ``send_data`` otherwise (TURN relays, which may wait)."""
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        raise ConnectionError("no nominated ICE pair")
    protocol = pair.protocol
    if type(protocol) is StunProtocol:
        protocol.transport.sendto(data, pair.remote_addr)
    else:
        await protocol.send_data(data, pair.remote_addr)
