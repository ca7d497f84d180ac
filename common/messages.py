"""Every message on Titanium's bus: a frozen dataclass with its topic and version, and the
single msgpack encode/decode pair.

On the wire a message is two ZeroMQ frames: the topic (bytes, for SUB filtering) and a
msgpack map of the dataclass fields plus ``v``, the message version.  A reader that gets a
newer version than it knows decodes the fields it knows and ignores the rest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import msgpack

M = TypeVar("M", bound="Message")
_REGISTRY: dict[bytes, type[Message]] = {}
_FIELDS: dict[type[Message], tuple[str, ...]] = {}


class MessageError(ValueError):
    """A frame pair that is not a known, well-formed message."""


@dataclass(frozen=True)
class Message:
    TOPIC: ClassVar[bytes] = b""
    VERSION: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.TOPIC:
            _REGISTRY[cls.TOPIC] = cls


@dataclass(frozen=True)
class FrameReady(Message):
    """A frame was written to a ring slot. Carries the slot reference, never pixels, and the
    rate frames arrive at, which the encoder's time base, GOP and bit budget follow."""

    TOPIC: ClassVar[bytes] = b"frame"
    VERSION: ClassVar[int] = 2  # 2: fps
    camera: str
    ring: str  # shared-memory name of the ring
    ring_id: int  # the ring instance (a restarted producer makes a new one)
    slot: int
    seq: int
    fourcc: str  # 'MJPG', 'YUYV', 'YU12', 'NV12'
    width: int
    height: int
    ts_wall: float  # capture time, seconds since the epoch
    placeholder: bool = False  # the "camera offline" frame
    # Frames a second as they reach the ring: what the camera negotiated (or capture thins
    # to), or the measured rate once that has differed for a few seconds (a USB camera in
    # low light). 0: no steady stream (the offline and paused frames).
    fps: float = 0.0


@dataclass(frozen=True)
class CameraStatus(Message):
    """What capture knows about its camera, published about once a second."""

    TOPIC: ClassVar[bytes] = b"camera"
    VERSION: ClassVar[int] = 3  # 2: paused, 3: fps
    camera: str
    source: str  # 'v4l2:/dev/video0', 'testpattern', 'file:…'
    online: bool
    fourcc: str
    width: int
    height: int
    fps_configured: float
    fps_measured: float
    frames: int
    dropped: int  # frames the source produced that never reached the ring
    error: str = ""
    controls: dict[str, int] = dataclasses.field(default_factory=dict)
    paused: bool = False  # the governor paused it: only a "paused" frame each second
    fps: float = 0.0  # the rate its frames carry (FrameReady.fps); 0 while offline or paused


@dataclass(frozen=True)
class Heartbeat(Message):
    """A service says it is alive, about once a second, with what its bus lost so far."""

    TOPIC: ClassVar[bytes] = b"heartbeat"
    VERSION: ClassVar[int] = 2  # 2: missed, bad
    service: str  # 'capture-cam0', 'mjpeg'
    pid: int
    started: float  # wall clock
    state: str = "running"
    detail: str = ""
    missed: int = 0  # messages its subscribers never got (common/bus.py)
    bad: int = 0  # malformed messages they dropped


def _fields(cls: type[Message]) -> tuple[str, ...]:
    """The field names of a message class, found once (``dataclasses.fields`` per message,
    and ``asdict``'s deep copy, cost 16 µs of the 20 an encode took: twice per frame)."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def encode(msg: Message) -> list[bytes]:
    """The two ZeroMQ frames for ``msg``. Fields hold only msgpack's own types (dicts of
    them included), so the body is the fields as they are."""
    body = {name: getattr(msg, name) for name in _fields(type(msg))}
    body["v"] = msg.VERSION
    return [msg.TOPIC, msgpack.packb(body, use_bin_type=True)]


def decode(frames: list[bytes]) -> Message:
    """The message in a frame pair, or MessageError. A third frame, the bus's sequence
    stamp (common/bus.py), is not part of the message."""
    if len(frames) not in (2, 3):
        raise MessageError(f"expected 2 frames, got {len(frames)}")
    cls = _REGISTRY.get(bytes(frames[0]))
    if cls is None:
        raise MessageError(f"unknown topic {bytes(frames[0])!r}")
    try:
        body = msgpack.unpackb(frames[1], raw=False)
    except (ValueError, msgpack.UnpackException) as e:
        raise MessageError(f"malformed msgpack: {e}") from None
    if not isinstance(body, dict):
        raise MessageError("body is not a map")
    names = _fields(cls)
    try:
        return cls(**{k: v for k, v in body.items() if k in names})
    except TypeError as e:
        raise MessageError(f"{cls.__name__}: {e}") from None


def decode_as(cls: type[M], frames: list[bytes]) -> M:
    msg = decode(frames)
    if not isinstance(msg, cls):
        raise MessageError(f"expected {cls.__name__}, got {type(msg).__name__}")
    return msg


@dataclass(frozen=True)
class EncodedReady(Message):
    """An encoded access unit was written to the encoder's ring (``ring``/``slot``)."""

    TOPIC: ClassVar[bytes] = b"encoded"
    camera: str
    codec: str  # 'h264'
    ring: str
    ring_id: int
    slot: int
    seq: int
    keyframe: bool  # an IDR with SPS/PPS in front: a viewer can start here
    width: int
    height: int
    pts: int  # 90 kHz clock, from the capture time
    ts_wall: float  # capture time of the source frame, seconds since the epoch


@dataclass(frozen=True)
class EncoderStatus(Message):
    """What an encoder is doing, published about once a second."""

    TOPIC: ClassVar[bytes] = b"encoder"
    VERSION: ClassVar[int] = 3  # 2: fps; 3: frames_heard
    camera: str
    backend: str  # 'libx264', 'h264_v4l2m2m', 'passthrough', '' before the first frame
    active: bool  # encoding now (someone watches)
    width: int
    height: int
    bitrate: int  # target, bit/s
    frames_in: int  # source frames taken from the capture ring
    frames_out: int  # access units written
    keyframes: int
    skipped: int  # source frames dropped because the encoder was behind
    error: str = ""
    fps: int = 0  # the frame rate its time base, GOP and bit budget are set for
    frames_heard: int = 0  # FrameReady messages received at all (none while idle)


@dataclass(frozen=True)
class StreamDemand(Message):
    """How many viewers of one source want a camera's encoded stream; the encoder adds up
    the recent demands of every source and idles at zero. Sent on every change and about
    once a second by each source."""

    TOPIC: ClassVar[bytes] = b"demand"
    VERSION: ClassVar[int] = 2  # 2: source
    camera: str
    codec: str
    viewers: int
    # Who counts these viewers: 'webrtc' (the WebRTC service, and every version-1 sender),
    # 'mjpeg' (the front door's H.264 WebSocket clients).
    source: str = "webrtc"


@dataclass(frozen=True)
class KeyframeRequest(Message):
    """A viewer needs an IDR now (joined, PLI, FIR); the encoder rate-limits these."""

    TOPIC: ClassVar[bytes] = b"keyframe"
    camera: str
    reason: str  # 'join', 'pli', 'fir', 'skip'


@dataclass(frozen=True)
class BitrateHint(Message):
    """A viewer's link suggests this bitrate (REMB, receiver-report loss)."""

    TOPIC: ClassVar[bytes] = b"bitrate"
    camera: str
    bitrate: int  # bit/s
    source: str  # 'remb', 'loss'


@dataclass(frozen=True)
class QualityCommand(Message):
    """The governor's order for one camera: capture delivers this size and rate (paused:
    only a "paused" frame each second, at this size), the encoder aims at this bitrate.
    Sent on every change and repeated about once a second, so a restarted service obeys
    within a second of starting."""

    TOPIC: ClassVar[bytes] = b"quality"
    camera: str
    rung: str  # '720p15', or 'paused'
    width: int
    height: int
    fps: int
    bitrate: int  # bit/s: the ceiling bitrate hints move under
    paused: bool
    reason: str  # why, for logs and /status: 'cpu 91.3 % > 60 % while printing'


@dataclass(frozen=True)
class ViewerAdmission(Message):
    """The lowest viewer priority served now ('low': everyone). The front door and the
    WebRTC service end the viewers below it and refuse new ones: memory shedding and
    critical print phases. Sent on every change and about once a second."""

    TOPIC: ClassVar[bytes] = b"admission"
    min_priority: str  # 'low', 'medium', 'high'
    reason: str


@dataclass(frozen=True)
class ViewerCount(Message):
    """How many viewers one service serves of one camera, by priority ('high', 'medium',
    'low'). Sent on every change and about once a second."""

    TOPIC: ClassVar[bytes] = b"viewers"
    service: str  # 'mjpeg', 'webrtc'
    camera: str
    viewers: dict[str, int]


@dataclass(frozen=True)
class GovernorEvent(Message):
    """What a printer host wants to hear about, on the governor's PUB: ``event`` is one of
    'quality.changed', 'stream.paused', 'stream.resumed', 'viewer.joined', 'viewer.left',
    'camera.offline', 'camera.online', 'admission.changed'."""

    TOPIC: ClassVar[bytes] = b"event"
    event: str
    camera: str  # '' when it concerns no one camera
    reason: str
    detail: dict[str, Any]
    ts: float  # wall clock
