"""A V4L2 camera as a FrameSource, through linuxpy.

Four mmap buffers stream from the driver; each frame is copied once, from the kernel's buffer
into the ring slot the capture loop hands in, and the buffer goes straight back to the driver.
What the camera agreed to (format, size, rate, controls) is read back, never assumed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import mmap
import select
import time
from typing import Any

from linuxpy.video.device import (
    BooleanControl,
    BufferFlag,
    BufferType,
    ButtonControl,
    Capability,
    CompoundControl,
    Device,
    FrameSizeType,
    Memory,
    MenuControl,
    PixelFormat,
    get_raw_format,
    human_pixel_format,
)

from titanium.common import formats
from titanium.common.discover import node_caps
from titanium.services.capture.source import (
    CapturedFrame,
    SourceConfigError,
    SourceError,
    StreamFormat,
)

log = logging.getLogger("titanium.capture.v4l2")

CAPTURE = BufferType.VIDEO_CAPTURE
BUFFERS = 4
# Some UVC cameras take well over a second to deliver their first frame (sensor start-up,
# auto exposure); the loop's per-frame timeout would otherwise reopen them forever.
FIRST_FRAME_TIMEOUT = 2.5
# A sequence jump this large is a driver that does not count frames, not lost frames.
MAX_GAP = 1 << 16

# Config name → pixel formats to ask for, in preference order, and the fourcc we report.
# Some cameras label their motion-JPEG stream 'JPEG' rather than 'MJPG'; the frames are alike.
FORMATS: dict[str, tuple[tuple[PixelFormat, ...], str]] = {
    "MJPEG": ((PixelFormat.MJPEG, PixelFormat.JPEG), formats.MJPG),
    "YUYV": ((PixelFormat.YUYV,), formats.YUYV),
    "NV12": ((PixelFormat.NV12,), formats.NV12),
    "YU12": ((PixelFormat.YUV420,), formats.YU12),
}


def _why(e: OSError) -> str:
    hints = {
        errno.ENOENT: "no such device (unplugged?)",
        errno.ENODEV: "device gone (unplugged?)",
        errno.ENXIO: "device gone (unplugged?)",
        errno.EACCES: "permission denied (is the service user in the 'video' group?)",
        errno.EBUSY: "device busy (is another program using the camera?)",
        errno.ENOTTY: "not a V4L2 device",
    }
    return hints.get(e.errno or 0) or e.strerror or str(e)


# V4L2 marks big-endian variants of a format with the fourcc's top bit ('Y16 ' | BE):
# printed raw it turns the last letter into junk ('XR1µ' for XR15-BE).
FOURCC_BIG_ENDIAN = 1 << 31


def _fourcc(pixel_format: int) -> str:
    code = int(pixel_format)
    name = human_pixel_format(code & ~FOURCC_BIG_ENDIAN).strip()
    return f"{name}-BE" if code & FOURCC_BIG_ENDIAN else name


class V4L2Source:
    """A FrameSource on a V4L2 capture node (UVC webcam, Pi camera through its V4L2 driver)."""

    def __init__(
        self,
        device: str,
        width: int,
        height: int,
        fps: int,
        pixel_format: str,
        controls: dict[str, int],
    ) -> None:
        if pixel_format != "auto" and pixel_format not in FORMATS:
            raise ValueError(f"pixel format {pixel_format!r} is not auto or one of {list(FORMATS)}")
        self.description = f"v4l2:{device}"
        self.dropped = 0
        self.path = device
        self.width, self.height, self.fps = width, height, fps
        self.pixel_format = pixel_format
        self._wanted = dict(controls)
        self._dev: Any = None
        self._poll: select.poll | None = None
        self._maps: list[mmap.mmap] = []
        self._views: list[memoryview] = []
        self._streaming = False
        self._fourcc = ""
        self._raw_size = 0  # exact payload of a raw frame; 0 for MJPEG
        self._last_seq: int | None = None
        self._first = True
        self._ctrls: dict[str, Any] = {}
        self._values: dict[str, int] = {}

    def open(self) -> StreamFormat:
        self.close()
        try:
            return self._start()
        except Exception as e:  # linuxpy chokes on some drivers' enum values: a bad device too
            self.close()
            if isinstance(e, SourceError):
                raise
            why = _why(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
            raise SourceError(f"{self.path}: {why}") from e

    def _start(self) -> StreamFormat:
        dev = self._dev = Device(self.path)  # non-blocking: read_into waits in poll, not DQBUF
        dev.open()
        caps = node_caps(dev)
        need = Capability.VIDEO_CAPTURE | Capability.STREAMING
        if caps & need != need:
            raise SourceConfigError(
                f"{self.path} ({dev.info.card}) is not a streaming video capture device"
            )
        # Not info.formats: it also walks overlay formats and raises on vivid and some cameras.
        offered = [f.pixel_format for f in dev.info.buffer_formats(CAPTURE)]
        pixfmt, fourcc = self._pick(dev, offered)
        try:
            dev.set_format(CAPTURE, self.width, self.height, int(pixfmt))
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            raise SourceConfigError(
                f"{self.path} refuses {fourcc} {self.width}x{self.height}; "
                f"it offers {_offers(dev, offered, pixfmt)}"
            ) from None
        fmt = get_raw_format(dev, CAPTURE).fmt.pix  # raw: linuxpy's enum fails on odd fourccs
        if (fmt.width, fmt.height, fmt.pixelformat) != (self.width, self.height, int(pixfmt)):
            raise SourceConfigError(
                f"{self.path} cannot capture {fourcc} {self.width}x{self.height} (it offered "
                f"{_fourcc(fmt.pixelformat)} {fmt.width}x{fmt.height}); it offers "
                f"{_offers(dev, offered, pixfmt)}"
            )
        self._fourcc, self._raw_size = fourcc, 0
        if fourcc != formats.MJPG:
            # Frames go on as tightly packed planes; a driver padding rows would shear them.
            row = self.width * 2 if fourcc == formats.YUYV else self.width
            if fmt.bytesperline not in (0, row):
                raise SourceConfigError(
                    f"{self.path} pads {fourcc} rows of {self.width} pixels to "
                    f"{fmt.bytesperline} bytes; choose another width or MJPEG"
                )
            self._raw_size = formats.frame_size(fourcc, self.width, self.height)
        fps = self._set_fps(dev)
        self._apply_controls(dev)
        capacity = self._start_streaming(dev, int(fmt.sizeimage))
        return StreamFormat(fourcc, self.width, self.height, fps, capacity)

    def _pick(self, dev: Any, offered: list[PixelFormat]) -> tuple[PixelFormat, str]:
        names = [self.pixel_format] if self.pixel_format != "auto" else list(FORMATS)
        for name in names:
            candidates, fourcc = FORMATS[name]
            for pixfmt in candidates:
                if pixfmt in offered:
                    return pixfmt, fourcc
        asked = self.pixel_format if self.pixel_format != "auto" else "any of " + "/".join(names)
        raise SourceConfigError(
            f"{self.path} does not offer {asked}; it offers {_offers(dev, offered, None)}"
        )

    def _set_fps(self, dev: Any) -> float:
        try:
            dev.set_fps(CAPTURE, self.fps)
        except OSError as e:  # drivers without S_PARM run at their own rate
            log.info("%s: cannot set %d fps (%s)", self.path, self.fps, _why(e))
        try:
            fps = float(dev.get_fps(CAPTURE))
        except (OSError, ZeroDivisionError):  # no G_PARM, or a 0/0 frame interval
            return float(self.fps)
        if not math.isfinite(fps) or fps <= 0:
            return float(self.fps)
        if abs(fps - self.fps) > 0.01:
            log.info("%s: asked for %d fps, the camera runs at %.3g", self.path, self.fps, fps)
        return fps

    def _apply_controls(self, dev: Any) -> None:
        self._ctrls, self._values = {}, {}
        if not self._wanted:
            return  # don't even list them: some drivers' tables trip linuxpy
        try:
            table = {c.config_name: c for c in dev.controls.values()}
        except OSError:
            raise
        except Exception as e:  # linuxpy rejects the whole table for one odd control
            raise SourceConfigError(f"cannot list the controls of {self.path}: {e}") from e
        # Automatic modes first: a manual exposure or colour temperature is refused (EACCES)
        # or ignored while its automatic mode is still on.
        for name in sorted(self._wanted, key=lambda n: "auto" not in n):
            value = self._wanted[name]
            ctrl = table.get(name)
            if ctrl is None or isinstance(ctrl, ButtonControl | CompoundControl):
                raise SourceConfigError(
                    f"{self.path} has no control {name!r}; it has {_control_list(table)}"
                )
            problem = _range_problem(ctrl, value)
            if problem:
                raise SourceConfigError(
                    f"control {name}={value} is out of range ({problem}); "
                    f"{self.path} has {_control_list(table)}"
                )
            try:
                ctrl.value = value
            except OSError as e:
                if e.errno in (errno.ENODEV, errno.EIO):
                    raise
                hint = " (still in its automatic mode?)" if e.errno == errno.EACCES else ""
                raise SourceConfigError(
                    f"{self.path} refused control {name}={value}: {e.strerror}{hint}"
                ) from None
            except (AttributeError, ValueError) as e:  # linuxpy: read-only, grabbed...
                raise SourceConfigError(f"{self.path} refused {name}={value}: {e}") from None
            try:
                got = ctrl.value
            except OSError as e:  # some UVC cameras set fine but fail GET_CUR
                log.info("%s: control %s cannot be read back: %s", self.path, name, _why(e))
                got = None
            got = value if got is None else int(got)  # write-only controls read as None
            if got != value:
                log.info("%s: control %s set to %d reads back %d", self.path, name, value, got)
            self._ctrls[name], self._values[name] = ctrl, got

    def _start_streaming(self, dev: Any, sizeimage: int) -> int:
        # The driver may grant more or fewer buffers than asked: use what it says.
        count = dev.request_buffers(CAPTURE, Memory.MMAP, BUFFERS).count
        for index in range(count):
            buff = dev.query_buffer(CAPTURE, Memory.MMAP, index)
            mm = mmap.mmap(dev.fileno(), buff.length, offset=buff.m.offset)
            self._maps.append(mm)
            self._views.append(memoryview(mm))
            dev.enqueue_buffer(CAPTURE, Memory.MMAP, 0, index)
        dev.stream_on(CAPTURE)
        self._streaming, self._first, self._last_seq = True, True, None
        self._poll = select.poll()
        self._poll.register(dev.fileno(), select.POLLIN)
        # A frame can never outgrow its buffer, whatever sizeimage claims (UVC MJPEG sizes
        # come from the camera's descriptors and some are wrong).
        return max(sizeimage, *(len(v) for v in self._views))

    def read_into(self, buf: memoryview, timeout: float) -> CapturedFrame:
        dev, poll = self._dev, self._poll
        if dev is None or poll is None:
            raise SourceError(f"{self.path} is not open")
        if self._first:
            timeout = max(timeout, FIRST_FRAME_TIMEOUT)
        deadline = time.monotonic() + timeout
        skipped: dict[str, int] = {}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                why = ", ".join(f"{n} {k}" for k, n in skipped.items())
                raise SourceError(
                    f"{self.path}: no frame for {timeout:.1f} s"
                    + (f" (skipped {why})" if why else "")
                )
            try:
                events = poll.poll(math.ceil(left * 1000))
                if not events:
                    continue
                buff = dev.dequeue_buffer(CAPTURE, Memory.MMAP)
            except BlockingIOError:  # woken for an event, not a frame
                if any(ev & (select.POLLERR | select.POLLHUP) for _, ev in events):
                    raise SourceError(f"{self.path}: the device reports an error") from None
                continue
            except OSError as e:
                raise SourceError(f"{self.path}: capture failed: {_why(e)}") from e
            try:
                size, reason = self._accept(buff)
                if size > len(buf):
                    raise SourceError(
                        f"{self.path}: a {size}-byte frame does not fit the {len(buf)}-byte slot"
                    )
                if size:
                    buf[:size] = self._views[buff.index][:size]
            finally:
                try:
                    dev.enqueue_buffer(CAPTURE, Memory.MMAP, 0, buff.index)
                except OSError as e:
                    raise SourceError(f"{self.path}: re-queueing failed: {_why(e)}") from e
            if size:
                self._first = False
                mono_ns, wall_ns = self._stamps(buff)
                return CapturedFrame(size, mono_ns, wall_ns)
            # Skipped, not fatal: on recent kernels UVC hands over every incomplete USB
            # transfer as an ERROR buffer; a camera that only sends such frames times out.
            self.dropped += 1
            skipped[reason] = skipped.get(reason, 0) + 1

    def _accept(self, buff: Any) -> tuple[int, str]:
        """The payload size to pass on (0: skip it) and, when skipped, why."""
        seq = int(buff.sequence)
        if self._last_seq is not None:
            gap = (seq - self._last_seq - 1) & 0xFFFFFFFF
            if gap < MAX_GAP:
                self.dropped += gap
        self._last_seq = seq
        if buff.flags & BufferFlag.ERROR:
            return 0, "flagged ERROR"
        used = int(buff.bytesused)
        if self._fourcc == formats.MJPG:
            view = self._views[buff.index]
            if used < 2 or view[0] != 0xFF or view[1] != 0xD8:
                return 0, "not JPEG"
            return used, ""
        if used < self._raw_size:
            return 0, "short"
        return self._raw_size, ""

    def _stamps(self, buff: Any) -> tuple[int, int]:
        now = time.monotonic_ns()
        offset = time.time_ns() - now
        mono = now
        if buff.flags & BufferFlag.TIMESTAMP_MASK == BufferFlag.TIMESTAMP_MONOTONIC:
            stamp = int(buff.timestamp.secs) * 1_000_000_000 + int(buff.timestamp.usecs) * 1000
            # Some drivers leave it 0 or stamp nonsense: trust it only if it is recent.
            if 0 <= now - stamp < 5_000_000_000:
                mono = stamp
        return mono, mono + offset

    def controls(self) -> dict[str, int]:
        for name, ctrl in self._ctrls.items():
            try:
                value = ctrl.value
            except Exception:  # status must never take capture down; keep the last value
                continue
            if value is not None:
                self._values[name] = int(value)
        return dict(self._values)

    def close(self) -> None:
        dev, self._dev = self._dev, None
        self._poll, self._ctrls = None, {}
        if dev is None:
            return
        if self._streaming:
            with contextlib.suppress(OSError):  # ENODEV once unplugged
                dev.stream_off(CAPTURE)
            self._streaming = False
        had_buffers = bool(self._maps)
        for view, mm in zip(self._views, self._maps, strict=True):
            with contextlib.suppress(BufferError):  # a stray slice keeps it: freed with it
                view.release()
                mm.close()
        self._views, self._maps = [], []
        if had_buffers:  # after munmap: older kernels refuse to free mapped buffers
            with contextlib.suppress(OSError):
                dev.free_buffers(CAPTURE, Memory.MMAP)
        with contextlib.suppress(OSError):
            dev.close()


def _range_problem(ctrl: Any, value: int) -> str:
    """'' when ``value`` suits ``ctrl``, else the valid values."""
    if isinstance(ctrl, BooleanControl):
        return "" if value in (0, 1) else "0 or 1"
    if isinstance(ctrl, MenuControl):
        return "" if value in ctrl.data else f"one of {dict(ctrl.data)}"
    lo, hi = int(ctrl.minimum), int(ctrl.maximum)
    return "" if lo <= value <= hi else f"{lo}..{hi}"


def _control_list(table: dict[str, Any]) -> str:
    items = [
        f"{name} ({int(c.minimum)}..{int(c.maximum)})"
        for name, c in table.items()
        if not isinstance(c, ButtonControl | CompoundControl)
    ]
    return ", ".join(items) or "none"


def _offers(dev: Any, offered: list[PixelFormat], chosen: PixelFormat | None) -> str:
    """What the camera offers, short: its formats, and the chosen one's sizes with top fps."""
    text = "formats " + (", ".join(_fourcc(p) for p in offered) or "none")
    if chosen is None:
        return text
    try:  # only for the message: never let it hide the error being reported
        sizes = []
        for size in dev.info.format_frame_sizes(chosen)[:12]:
            info = size.info
            if size.type == FrameSizeType.DISCRETE:
                rates = [
                    float(t.max_fps)
                    for t in dev.info.fps_intervals(chosen, info.width, info.height)
                ]
                top = max(rates, default=0.0)
                sizes.append(f"{info.width}x{info.height}" + (f"@{top:g}" if top else ""))
            else:
                sizes.append(
                    f"{info.min_width}x{info.min_height}..{info.max_width}x{info.max_height}"
                )
        if sizes:
            text += f"; {_fourcc(chosen)} sizes {', '.join(sizes)}"
    except Exception as e:
        log.debug("%s: listing frame sizes failed: %s", dev.filename, e)
    return text
