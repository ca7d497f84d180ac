"""Where one WebRTC viewer's per-frame cost goes, stage by stage, in one process: the AU's
``av.Packet`` copy, aiortc's H.264 ``pack`` (NAL split, STAP-A/FU-A), the RTP packet build
and ``serialize``, SRTP ``protect`` and ``sendto`` on loopback. Frames are libx264 AUs of
noisy 720p frames at 2 Mb/s, so the packet count per AU is a camera's, not a test pattern's.

    python -m benchmarks.rtp_viewer_cost [--frames 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import socket
import time
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc import clock
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from pylibsrtp import Policy, Session

W, H, FPS, BITRATE = 1280, 720, 30, 2_000_000


def encoded(frames: int) -> list[bytes]:
    ctx: Any = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = W, H, "yuv420p"
    ctx.time_base, ctx.bit_rate = Fraction(1, FPS), BITRATE
    ctx.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "x264-params": f"repeat-headers=1:keyint={2 * FPS}:bframes=0",
    }
    base = np.random.default_rng(0).integers(0, 255, (H * 3 // 2, W), dtype=np.uint8)
    aus: list[bytes] = []
    for n in range(frames):
        frame = av.VideoFrame.from_ndarray(np.roll(base, n * 4, axis=1), format="yuv420p")
        frame.pts = n
        aus.extend(bytes(p) for p in ctx.encode(frame))
    return aus


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.rtp_viewer_cost")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    aus = encoded(args.frames)
    encoder = H264Encoder()
    time_base = Fraction(1, 90000)
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                ),
            ]
        )
    )
    srtp = Session(policy=Policy(key=bytes(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setblocking(False)
    spent = dict.fromkeys(("packet", "pack", "rtp", "srtp", "sendto"), 0.0)
    packets = seq = 0
    for _ in range(args.repeats):
        for i, data in enumerate(aus):
            t0 = time.perf_counter()
            pkt = av.Packet(data)
            pkt.pts, pkt.time_base = i * 3000, time_base
            t1 = time.perf_counter()
            payloads, ts = encoder.pack(pkt)
            t2 = time.perf_counter()
            spent["packet"] += t1 - t0
            spent["pack"] += t2 - t1
            for j, payload in enumerate(payloads):
                t3 = time.perf_counter()
                rtp = RtpPacket(payload_type=102, sequence_number=seq, timestamp=ts)
                rtp.ssrc, rtp.payload = 1234, payload
                rtp.marker = int(j == len(payloads) - 1)
                rtp.extensions.abs_send_time = (clock.current_ntp_time() >> 14) & 0xFFFFFF
                rtp.extensions.mid = "0"
                raw = rtp.serialize(extensions)
                t4 = time.perf_counter()
                protected = srtp.protect(raw)
                t5 = time.perf_counter()
                try:
                    out.sendto(protected, sink.getsockname())
                except BlockingIOError:
                    pass
                t6 = time.perf_counter()
                spent["rtp"] += t4 - t3
                spent["srtp"] += t5 - t4
                spent["sendto"] += t6 - t5
                seq, packets = (seq + 1) & 0xFFFF, packets + 1
            while True:  # keep the sink's buffer from filling (its cost is not timed)
                try:
                    sink.recv(2048)
                except BlockingIOError:
                    break
    frames = args.repeats * len(aus)
    size = sum(map(len, aus)) / len(aus)
    print(f"{len(aus)} AUs, {size:.0f} B and {packets / frames:.1f} RTP packets each")
    for stage, seconds in spent.items():
        print(f"  {stage:7s} {seconds / frames * 1000:.3f} ms/frame per viewer")
    print(f"  total   {sum(spent.values()) / frames * 1000:.3f} ms/frame per viewer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
