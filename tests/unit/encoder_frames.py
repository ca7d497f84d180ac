"""Source frames for the encoder tests: the capture test pattern in every ring format, and
the checks made on what comes out (SPS fields, decoded pictures)."""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np
import simplejpeg

from titanium.services.capture.testpattern import TestPatternSource
from titanium.services.encoder.backend import AccessUnit, EncoderSettings, SourceFrame
from titanium.services.encoder.convert import plane_views
from titanium.services.encoder.nal import NAL_IDR, NAL_SPS, head_types, iter_nals

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


class Pattern:
    """Frame ``n`` of the moving test pattern as I420 planes, and as each ring format."""

    def __init__(self, width: int, height: int, fps: int = 30) -> None:
        self.width, self.height = width, height
        self._src = TestPatternSource(width, height, fps)
        self._src.open()

    def i420(self, n: int) -> bytes:
        buf = bytearray(self.width * self.height * 3 // 2)
        self._src._draw(memoryview(buf), n)
        return bytes(buf)

    def planes(self, n: int) -> Planes:
        w, h = self.width, self.height
        a = np.frombuffer(self.i420(n), np.uint8)
        return (
            a[: w * h].reshape(h, w),
            a[w * h : w * h * 5 // 4].reshape(h // 2, w // 2),
            a[w * h * 5 // 4 :].reshape(h // 2, w // 2),
        )

    def data(self, fourcc: str, n: int) -> bytes:
        """Frame ``n`` in ``fourcc`` as capture would put it in the ring."""
        y, u, v = self.planes(n)
        if fourcc == "YU12":
            return self.i420(n)
        if fourcc == "NV12":
            uv = np.empty((u.shape[0], u.shape[1] * 2), np.uint8)
            uv[:, 0::2], uv[:, 1::2] = u, v
            return y.tobytes() + uv.tobytes()
        if fourcc == "YUYV":
            packed = np.empty((self.height, self.width * 2), np.uint8)
            packed[:, 0::2] = y
            packed[:, 1::4] = np.repeat(u, 2, axis=0)
            packed[:, 3::4] = np.repeat(v, 2, axis=0)
            return packed.tobytes()
        if fourcc == "MJPG":  # a camera's 4:2:2 JPEG
            u2, v2 = np.repeat(u, 2, axis=0), np.repeat(v, 2, axis=0)
            return bytes(simplejpeg.encode_jpeg_yuv_planes(y, u2, v2, quality=92))
        if fourcc == "MJPG420":  # like the "camera offline" placeholder
            return bytes(simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=92))
        raise ValueError(fourcc)

    def frame(self, fourcc: str, n: int, fps: int = 30) -> SourceFrame:
        mono = 1_000_000_000 + n * 1_000_000_000 // fps
        wall = time.time_ns() + n
        ring_fourcc = "MJPG" if fourcc.startswith("MJPG") else fourcc
        return SourceFrame(
            memoryview(self.data(fourcc, n)), ring_fourcc, self.width, self.height, mono, wall
        )


def settings(fps: int = 30, kbit: int = 1000, keyframe_interval: float = 1.0) -> EncoderSettings:
    return EncoderSettings(fps, kbit * 1000, keyframe_interval)


def sps_fields(au: bytes) -> tuple[int, int, int]:
    """(profile_idc, constraint flags byte, level_idc) of the AU's SPS."""
    for nal_type, start, _ in iter_nals(au):
        if nal_type == NAL_SPS:
            return au[start + 1], au[start + 2], au[start + 3]
    raise AssertionError("no SPS in the access unit")


def decode_all(aus: list[bytes]) -> list[av.VideoFrame]:
    dec = av.CodecContext.create("h264", "r")
    dec.thread_count = 1
    out: list[av.VideoFrame] = []
    for i, au in enumerate(aus):
        packet = av.Packet(au)
        packet.pts = i
        packet.time_base = Fraction(1, 30)
        out += dec.decode(packet)
    out += dec.decode(None)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    err = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(255**2 / err))


def yuv_planes(frame: av.VideoFrame) -> Planes:
    """Y, U, V of a decoded 4:2:0 picture (video or full range), without row padding."""
    assert frame.format.name in ("yuv420p", "yuvj420p"), frame.format.name
    y, u, v = plane_views(frame)
    return y, u, v


def datas(units: list[AccessUnit]) -> list[bytes]:
    return [u.data for u in units]


class NullBackend:
    """An H264Backend that makes a fake AU per frame: an IDR when forced or first, with
    SPS/PPS in front, else a P slice. Records what it was asked."""

    def __init__(self, name: str = "libx264", bitrate: int = 1_000_000) -> None:
        self.name = name
        self.bitrate = bitrate
        self.forced: list[bool] = []
        self.closed = False

    def encode(self, frame: SourceFrame, force_idr: bool) -> list[AccessUnit]:
        self.forced.append(force_idr)
        if force_idr or len(self.forced) == 1:
            data = b"\x00\x00\x00\x01\x67\x42\xc0\x1f\x00\x00\x00\x01\x68\xce\x00\x00\x01\x65\x88"
        else:
            data = b"\x00\x00\x00\x01\x41\x9a"
        return [AccessUnit(data, NAL_IDR in head_types(data), frame.mono_ns, frame.wall_ns)]

    def set_bitrate(self, bitrate: int) -> None:
        self.bitrate = bitrate

    def close(self) -> None:
        self.closed = True
