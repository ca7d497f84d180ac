"""The ``playout-delay`` RTP header extension on our video packets.

Chromium offers http://www.webrtc.org/experiments/rtp-hdrext/playout-delay and, when the
sender writes it, holds each frame in its jitter buffer between the min and max it carries
(12 bits each, in 10 ms units). Without it Chromium sizes the buffer by its own estimate:
frames on a LAN wait several milliseconds for nothing. aiortc negotiates only ``mid`` and
``abs-send-time`` and has no hook for another extension, so this module adds one in the
two places aiortc keeps them: its table of offered extensions (the answer to a browser's
offer keeps the browser's id, our own offer uses ``OUR_ID``), and each sender's
extension map, which writes the negotiated id on every packet it serializes (first packet
of a frame included; retransmissions too)."""

from __future__ import annotations

from typing import Any

from aiortc.codecs import HEADER_EXTENSIONS
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    HeaderExtensions,
    HeaderExtensionsMap,
    pack_header_extensions,
    unpack_header_extensions,
)

PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
# aiortc's video extensions use ids 1 and 3; the id space is shared under BUNDLE.
OUR_ID = 6
MAX_MS = 4095 * 10


def encode_delay(min_ms: int, max_ms: int) -> bytes:
    """The extension's 3 bytes: min then max, 12 bits each, in 10 ms units."""
    if not (0 <= min_ms <= max_ms <= MAX_MS and min_ms % 10 == 0 and max_ms % 10 == 0):
        raise ValueError(f"playout delay {min_ms}..{max_ms} ms is not 0 ≤ min ≤ max ≤ {MAX_MS}")
    value = (min_ms // 10) << 12 | (max_ms // 10)
    return value.to_bytes(3, "big")


def decode_delay(data: bytes) -> tuple[int, int]:
    """(min_ms, max_ms) from the extension's 3 bytes."""
    value = int.from_bytes(data[:3], "big")
    return (value >> 12) * 10, (value & 0xFFF) * 10


def offer_playout_delay() -> None:
    """Make aiortc offer and accept the extension for video, in this process (once)."""
    video = HEADER_EXTENSIONS["video"]
    if not any(x.uri == PLAYOUT_DELAY_URI for x in video):
        video.append(RTCRtpHeaderExtensionParameters(id=OUR_ID, uri=PLAYOUT_DELAY_URI))


class PlayoutDelayMap(HeaderExtensionsMap):
    """aiortc's extension map plus playout-delay, written with the id the peer agreed to
    (nothing is written when the peer did not take it)."""

    def __init__(self, min_ms: int, max_ms: int) -> None:
        super().__init__()
        self.delay = encode_delay(min_ms, max_ms)
        self.id: int | None = None

    def configure(self, parameters: RTCRtpParameters) -> None:
        super().configure(parameters)
        for ext in parameters.headerExtensions:
            if ext.uri == PLAYOUT_DELAY_URI:
                self.id = ext.id

    def set(self, values: HeaderExtensions) -> tuple[int, bytes]:
        profile, data = super().set(values)
        if self.id is None:
            return profile, data
        elements = unpack_header_extensions(profile, data) if data else []
        elements.append((self.id, self.delay))
        return pack_header_extensions(elements)


def send_playout_delay(sender: Any, delay_ms: tuple[int, int]) -> PlayoutDelayMap:
    """Give ``sender`` (an RTCRtpSender, before its ``send()``: it configures the map from
    the negotiated parameters there) the map that writes ``delay_ms``."""
    extensions = PlayoutDelayMap(*delay_ms)
    sender._RTCRtpSender__rtp_header_extensions_map = extensions
    return extensions
