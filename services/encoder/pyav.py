"""The two encoding backends, both through PyAV: libx264 and the V4L2 M2M hardware encoder.

Both produce constrained baseline (profile_idc 66 with constraint_set1; aiortc and
browsers negotiate profile-level-id 42e01f) at level 3.1, no B-frames, one IDR every
``keyframe_interval`` seconds and none on scene cuts, SPS/PPS in front of each IDR.
"""

from __future__ import annotations

import logging
from collections import deque
from fractions import Fraction
from typing import cast

import av
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType
from av.video.reformatter import ColorRange

from titanium.services.encoder.backend import (
    AccessUnit,
    BackendError,
    EncoderSettings,
    SourceFrame,
)
from titanium.services.encoder.convert import FrameLoader

log = logging.getLogger("titanium.encoder")

# Level 3.1 (1280x720 at 30 fps) is what profile-level-id 42e01f promises; a larger frame
# still streams (browsers decode it), but 4.x would need a different SDP negotiation.
LEVEL = 31
LEVEL_MAX_MACROBLOCKS = 3600


class PyAVBackend:
    """A PyAV encoder context fed from one reused picture; reopened when the picture's
    size or colour range changes (the stream restarts with an IDR and new SPS)."""

    name = ""
    # libx264 follows a new AVCodecContext.bit_rate at the next frame (libavcodec calls
    # x264_encoder_reconfig), so the stream goes on without an IDR; the M2M encoder reads
    # its bitrate only when opened.
    live_bitrate = False

    def __init__(self, settings: EncoderSettings, width: int, height: int) -> None:
        self.settings = settings
        self.bitrate = settings.bitrate
        self._loader = FrameLoader()
        self._ctx: VideoCodecContext | None = None
        self._shape = (0, 0, False)
        self._n = 0  # our pts: one tick a frame, so the encoder sees a steady rate
        self._times: deque[tuple[int, int, int]] = deque(maxlen=64)  # (pts, mono, wall)
        self.extradata = b""
        self._open(width, height, False)

    def _configure(self, ctx: VideoCodecContext) -> None:
        raise NotImplementedError

    def _open(self, width: int, height: int, full_range: bool) -> None:
        self.close()
        ctx = cast(VideoCodecContext, av.CodecContext.create(self.name, "w"))
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, self.settings.fps)
        ctx.framerate = Fraction(self.settings.fps, 1)
        ctx.bit_rate = self.bitrate
        ctx.gop_size = self.settings.gop
        ctx.max_b_frames = 0
        ctx.color_range = ColorRange.JPEG if full_range else ColorRange.MPEG
        self._configure(ctx)
        try:
            ctx.open()
        except (av.FFmpegError, OSError) as e:
            raise BackendError(f"{self.name} does not open at {width}x{height}: {e}") from None
        self._ctx = ctx
        self._shape = (width, height, full_range)
        self.extradata = bytes(ctx.extradata or b"")
        if (width // 16 + (width % 16 > 0)) * (height // 16 + (height % 16 > 0)) > (
            LEVEL_MAX_MACROBLOCKS
        ):
            log.warning("%dx%d is above H.264 level 3.1; browsers still decode it", width, height)

    def encode(self, frame: SourceFrame, force_idr: bool) -> list[AccessUnit]:
        pic, full_range = self._loader.load(frame)
        shape = (pic.width, pic.height, full_range)
        if shape != self._shape:
            log.info(
                "%s: reopening for %dx%d %s range",
                self.name,
                pic.width,
                pic.height,
                "full" if full_range else "video",
            )
            self._open(*shape)
        assert self._ctx is not None
        pic.pts = self._n
        pic.time_base = self._ctx.time_base
        pic.color_range = ColorRange.JPEG if full_range else ColorRange.MPEG
        # Decoded frames come tagged as I-frames and libx264 obeys the tag: without this
        # reset every frame of an MJPEG camera would be a keyframe.
        pic.pict_type = PictureType.I if force_idr else PictureType.NONE
        self._times.append((self._n, frame.mono_ns, frame.wall_ns))
        self._n += 1
        try:
            packets = self._ctx.encode(pic)
        except (av.FFmpegError, OSError) as e:
            raise BackendError(f"{self.name} failed: {e}") from None
        return [self._unit(p) for p in packets]

    def _unit(self, packet: av.Packet) -> AccessUnit:
        mono, wall = self._times[-1][1:]
        for pts, m, w in reversed(self._times):
            if pts == packet.pts:
                mono, wall = m, w
                break
        return AccessUnit(bytes(packet), bool(packet.is_keyframe), mono, wall)

    def set_bitrate(self, bitrate: int) -> None:
        self.bitrate = bitrate
        if self._ctx is None:
            return
        if self.live_bitrate:
            self._ctx.bit_rate = bitrate
        else:
            self._open(*self._shape)

    def close(self) -> None:
        self._ctx = None  # PyAV frees the codec context with the object


class Libx264Backend(PyAVBackend):
    """Software H.264 for every board without a hardware encoder (the Pi 5 included)."""

    name = "libx264"
    live_bitrate = True

    def _configure(self, ctx: VideoCodecContext) -> None:
        cap = self.settings.bitrate
        gop = self.settings.gop
        # One thread: frame threads add a frame of latency each, and the printer's own
        # processes need the other cores.
        ctx.thread_count = 1
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",  # x264 writes constraint_set1 for it: constrained baseline
            "level": "3.1",
            "forced-idr": "1",
            # The VBV cap stays at the configured bitrate (hints move the average under
            # it); half a second of buffer bounds the burst a keyframe puts on the link.
            "maxrate": str(cap),
            "bufsize": str(cap // 2),
            "x264-params": (f"repeat-headers=1:scenecut=0:keyint={gop}:min-keyint={gop}:bframes=0"),
        }


class V4l2M2mBackend(PyAVBackend):
    """The Pi 4's hardware encoder (bcm2835-codec) through V4L2 memory-to-memory.

    Where there is no M2M device, opening fails with EINVAL and the factory falls back.
    SPS/PPS may come only in extradata: the loop puts them in front of each IDR.
    """

    name = "h264_v4l2m2m"

    def _configure(self, ctx: VideoCodecContext) -> None:
        ctx.profile = "Constrained Baseline"
        ctx.level = LEVEL
