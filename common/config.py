"""Titanium's configuration: one JSON file, validated once into frozen dataclasses.

Shape (every key optional; the defaults below are the only place defaults live)::

    {"titanium": {
        "enabled": true,
        "cameras": [{"id": "cam0", "device": "testpattern", "resolution": "1280x720",
                     "fps": 30, "format": "auto", "codec": "h264", "bitrate": "2000k",
                     "encoder": "auto", "keyframe_interval": 2,
                     "controls": {"brightness": 128}, "cpu": null, "realtime_priority": 10,
                     "priority": "medium"}],
        "streaming": {"default_quality": "auto", "jpeg_quality": "high", "max_viewers": 10,
                      "adaptive_bitrate": true, "print_protection": true},
        "http": {"listen": "127.0.0.1:8080"},
        "governor": {"printer_cpus": [3], "cpu_high": 60, "calm_time": 30, …},
        "runtime_dir": "/run/titanium"},
     "mirage": {"titanium_streams": {"enabled": false, "signaling_port": 8443,
                                     "stun_servers": [], "turn_servers": []},
                "proxy": "", "device": {"id": "", "secret": ""}, "plain_ws": false,
                "ca_file": ""}}

The printer's link to a proxy (``proxy``, ``device``, ``plain_ws``, ``ca_file``) is in
mirageconfig.py.

The specification's own example (shared/spec/config-example.json) is accepted as written.
The governor section lives in govconfig.py (its fields and defaults are listed there).

Every error names the key path (``titanium.cameras[0].fps``) and what is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from titanium.common.address import Address, parse_address
from titanium.common.fields import ConfigError, Field, dump_fields, read_json_file, take_fields
from titanium.common.govconfig import (
    GovernorConfig,
    RungSpec,
    governor_to_json,
    parse_governor,
    rung_spec,
)
from titanium.common.mirageconfig import MirageLink, link_to_json, parse_link, take_mirage
from titanium.common.priority import PRIORITIES

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]

# JPEG quality for each of the names `streaming.jpeg_quality` takes besides 1–100.
QUALITY_JPEG = {"high": 85, "medium": 70, "low": 50}
# The specification's quality profiles (the governor's ladder rungs) for
# `streaming.default_quality`; 'auto' is the camera's own configured size and rate.
PROFILES = ("1080p60", "1080p30", "720p30", "720p15", "480p15", "360p5")
# bit/s: no stream is given less, whatever a viewer's link or the governor's ladder
# suggests, unless its own ceiling is lower still. Under it 720p is mush, and a smaller
# size or rate (the governor's ladder) is the better lever.
MIN_BITRATE = 100_000
BITRATE_KBPS = (MIN_BITRATE // 1000, 50000)
CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
V4L2_PATH = re.compile(r"^/dev/(video\d+|v4l/by-(id|path)/.+)$")
PIXEL_FORMATS = ("auto", "MJPEG", "YUYV", "NV12", "YU12")
# 'auto': passthrough when the camera gives H.264, else the board's hardware encoder
# (V4L2 M2M, Pi 4) when it opens, else libx264.
ENCODERS = ("auto", "libx264", "h264_v4l2m2m")


@dataclass(frozen=True)
class Resolution:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class CameraConfig:
    id: str
    device: str
    resolution: Resolution
    fps: int
    format: str
    codec: str
    bitrate: int  # kbit/s
    encoder: str
    keyframe_interval: float
    controls: Mapping[str, int]
    cpu: int | None
    realtime_priority: int
    priority: str  # 'high' (print monitoring), 'medium', 'low' (background)

    @property
    def bitrate_bps(self) -> int:
        return self.bitrate * 1000

    @property
    def source_kind(self) -> str:
        """'v4l2', 'testpattern' or 'file'."""
        if self.device == "testpattern":
            return "testpattern"
        if self.device.startswith("file:"):
            return "file"
        return "v4l2"


@dataclass(frozen=True)
class StreamingConfig:
    default_quality: str  # a profile from PROFILES, or 'auto'
    jpeg_quality: int  # 1–100
    max_viewers: int
    adaptive_bitrate: bool
    print_protection: bool
    remote_bitrate_floor: int  # percent of the camera's bitrate
    hls_idle_seconds: int  # an LL-HLS muxer stops this long after its last request

    @property
    def default_rung(self) -> RungSpec | None:
        """The best rung viewers get (capped by each camera), None for the camera's own."""
        return None if self.default_quality == "auto" else rung_spec(self.default_quality)


@dataclass(frozen=True)
class LimitsConfig:
    """Per source address and per token: requests a second (sustained, and the burst
    allowed above it) and sessions open at once. Over a limit: 429 with Retry-After."""

    signalling_rate: float
    signalling_burst: int
    snapshot_rate: float
    snapshot_burst: int
    sessions_per_token: int
    sessions_per_address: int


@dataclass(frozen=True)
class HttpConfig:
    listen: Address
    auth: str  # 'off' or 'token'
    auth_exempt_loopback: bool
    limits: LimitsConfig


@dataclass(frozen=True)
class WebrtcConfig:
    ice_addresses: tuple[str, ...]
    playout_delay_ms: tuple[int, int] | None


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server handed to WebRTC peers (ours and the viewers')."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class MirageConfig:
    """``mirage.titanium_streams``: remote viewing through the Mirage proxy."""

    enabled: bool
    signaling_port: int
    stun_servers: tuple[str, ...]
    turn_servers: tuple[IceServer, ...]


@dataclass(frozen=True)
class Config:
    enabled: bool
    cameras: tuple[CameraConfig, ...]
    streaming: StreamingConfig
    http: HttpConfig
    webrtc: WebrtcConfig
    governor: GovernorConfig
    runtime_dir: Path
    mirage: MirageConfig
    state_dir: Path
    mirage_link: MirageLink
    source: str = field(default="defaults", compare=False)

    @property
    def dial_out(self) -> str | None:
        """None when the printer dials its Mirage proxy, else why it does not."""
        link = self.mirage_link
        if not self.mirage.enabled:
            return "mirage.titanium_streams.enabled is false"
        if not link.proxy:
            return "mirage.titanium_streams.enabled is true but mirage.proxy is not set"
        if not (link.device_id and link.secret):
            return "mirage.proxy is set but mirage.device has no id and secret"
        return None

    @property
    def ice_servers(self) -> tuple[IceServer, ...]:
        """STUN and TURN servers for WebRTC peers (ours and the viewers'): none by default,
        since a LAN needs none."""
        stun = tuple(IceServer((url,)) for url in self.mirage.stun_servers)
        return stun + self.mirage.turn_servers

    def camera(self, camera_id: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)


def _device(value: str) -> str:
    if value in ("testpattern", "auto") or (value.startswith("file:") and len(value) > 5):
        return value
    if V4L2_PATH.match(value):
        return value
    raise ValueError(
        "a V4L2 path (/dev/videoN, /dev/v4l/by-id/…), 'testpattern', 'file:PATH' or 'auto'"
    )


def _resolution(value: str) -> Resolution:
    m = re.fullmatch(r"(\d+)x(\d+)", value)
    if not m:
        raise ValueError("WIDTHxHEIGHT, for example 1280x720")
    w, h = int(m.group(1)), int(m.group(2))
    if not (16 <= w <= 4096 and 16 <= h <= 4096) or w % 2 or h % 2:
        raise ValueError("even width and height between 16 and 4096")
    return Resolution(w, h)


def _camera_id(value: str) -> str:
    if not CAMERA_ID.match(value):
        raise ValueError("lower-case letters, digits, '-' and '_', at most 32, starting alnum")
    return value


def _controls(value: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, v in value.items():
        if isinstance(v, bool):
            v = int(v)
        if not isinstance(v, int):
            raise ValueError(f"control {name!r}: an integer (or true/false), got {v!r}")
        out[name] = v
    return out


BITRATE_FORMS = (
    "kbit/s as an integer (2000) or a string with a unit: '2000k', '800kbps', '2M', '2.5M'"
)
_BITRATE = re.compile(r"(\d+(?:\.\d+)?)\s*(k|kbps|kbit/s|m|mbps|mbit/s)?", re.IGNORECASE)


def _bitrate(value: int | str) -> int:
    """kbit/s from ``2000``, ``"2000k"``, ``"800kbps"``, ``"2M"`` or ``"2.5M"``."""
    if isinstance(value, int):
        kbps = float(value)
    else:
        m = _BITRATE.fullmatch(value.strip())
        if not m:
            raise ValueError(BITRATE_FORMS)
        unit = (m.group(2) or "k").lower()
        kbps = float(m.group(1)) * (1000 if unit.startswith("m") else 1)
    lo, hi = BITRATE_KBPS
    if not lo <= kbps <= hi:
        raise ValueError(f"from {lo} to {hi} kbit/s, {BITRATE_FORMS}")
    return round(kbps)


def floored_bitrate(bitrate: int, ceiling: int) -> int:
    """``bitrate`` (bit/s) raised to MIN_BITRATE, unless the ``ceiling`` is lower still."""
    return max(min(MIN_BITRATE, ceiling), bitrate)


def _default_quality(value: str) -> str:
    if value in QUALITY_JPEG:
        raise ValueError(
            f"a quality profile; the JPEG quality {value!r} moved to "
            "titanium.streaming.jpeg_quality"
        )
    if value != "auto" and value not in PROFILES:
        raise ValueError("one of " + ", ".join(repr(p) for p in ("auto", *PROFILES)))
    return value


def _jpeg_quality(value: int | str) -> int:
    if isinstance(value, str):
        if value not in QUALITY_JPEG:
            raise ValueError("1 to 100, or 'high', 'medium' or 'low'")
        return QUALITY_JPEG[value]
    if not 1 <= value <= 100:
        raise ValueError("1 to 100, or 'high', 'medium' or 'low'")
    return value


def _keyframe_interval(value: float) -> float:
    if not 0.2 <= value <= 60:
        raise ValueError("a number of seconds from 0.2 to 60")
    return float(value)


def _cpu(value: int | None) -> int | None:
    if value is not None and not 0 <= value < 1024:
        raise ValueError("a CPU index (0, 1, …) or null for no pinning")
    return value


def default_runtime_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/run/titanium")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "titanium"
    return Path(f"/tmp/titanium-{os.getuid()}")


def default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/titanium")
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "titanium"


CAMERA_FIELDS = (
    Field("id", str, "cam0", "name used in URLs and messages", _camera_id),
    Field("device", str, "auto", "V4L2 path, 'testpattern', 'file:PATH' or 'auto'", _device),
    Field("resolution", str, "1280x720", "capture size WIDTHxHEIGHT", _resolution),
    Field("fps", int, 30, "capture frame rate", range=(1, 120)),
    Field("format", str, "auto", "V4L2 pixel format to ask for", choices=PIXEL_FORMATS),
    Field("codec", str, "h264", "WebRTC codec (MJPEG is always served)", choices=("h264", "mjpeg")),
    Field("bitrate", (int, str), 2000, "H.264 bitrate", _bitrate),
    Field("encoder", str, "auto", "H.264 encoder backend", choices=ENCODERS),
    Field("keyframe_interval", (int, float), 2, "seconds between keyframes", _keyframe_interval),
    Field("controls", dict, {}, "V4L2 controls by name, applied at start", _controls),
    Field("cpu", (int, type(None)), None, "CPU to pin capture to", _cpu),
    Field("realtime_priority", int, 10, "SCHED_FIFO priority for capture, 0 = off", range=(0, 99)),
    Field("priority", str, "medium", "what the governor protects first", choices=PRIORITIES),
)
STREAMING_FIELDS = (
    Field(
        "default_quality",
        str,
        "auto",
        "the best quality profile viewers get, capped by the camera's configuration",
        _default_quality,
    ),
    Field(
        "jpeg_quality", (int, str), "high", "JPEG quality for MJPEG and snapshots", _jpeg_quality
    ),
    Field("max_viewers", int, 10, "viewers served at once per camera", range=(1, 1000)),
    Field("adaptive_bitrate", bool, True, "follow viewers' bandwidth", None),
    Field(
        "remote_bitrate_floor",
        int,
        50,
        "percent of a camera's bitrate a remote (Mirage) viewer cannot pull the shared "
        "encode below while a LAN viewer watches",
        range=(0, 100),
    ),
    Field("print_protection", bool, True, "give way to the printer", None),
    Field(
        "hls_idle_seconds",
        int,
        30,
        "seconds an LL-HLS muxer (and its share of the encode) runs after its last request",
        range=(1, 3600),
    ),
)


def _addresses(value: list[Any]) -> tuple[str, ...]:
    if not all(isinstance(a, str) and re.fullmatch(r"[0-9a-fA-F.:]+", a) for a in value):
        raise ValueError('a list of local IP addresses, for example ["127.0.0.1"]')
    return tuple(value)


def _playout_delay(value: list[Any] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or not 0 <= value[0] <= value[1] <= 40950
        or value[0] % 10
        or value[1] % 10
    ):
        raise ValueError("[min, max] in ms, multiples of 10, 0 ≤ min ≤ max ≤ 40950")
    return (value[0], value[1])


WEBRTC_FIELDS = (
    Field(
        "ice_addresses",
        list,
        [],
        "local addresses for ICE host candidates; empty: every interface but loopback",
        _addresses,
    ),
    # Chromium's jitter buffer waits for its own estimate unless told: on a LAN, 0.
    Field(
        "playout_delay_ms",
        (list, type(None)),
        [0, 0],
        "the playout-delay [min, max] sent to browsers; null: not negotiated",
        _playout_delay,
    ),
)


def _rate(value: float) -> float:
    if not 0.1 <= value <= 10000:
        raise ValueError("requests a second, from 0.1 to 10000")
    return float(value)


LIMITS_FIELDS = (
    Field("signalling_rate", (int, float), 2.0, "signalling requests a second", _rate),
    Field("signalling_burst", int, 20, "signalling requests above the rate", range=(1, 10000)),
    # mjpegstreamer-adaptive polls /snapshot at its target_fps (15 by default, up to 30)
    Field("snapshot_rate", (int, float), 60.0, "snapshot requests a second", _rate),
    Field("snapshot_burst", int, 60, "snapshot requests above the rate", range=(1, 10000)),
    Field("sessions_per_token", int, 20, "streams and peers open at once", range=(1, 10000)),
    Field("sessions_per_address", int, 40, "streams and peers open at once", range=(1, 10000)),
)
HTTP_FIELDS = (
    Field("listen", str, "127.0.0.1:8080", "HTTP front door address", parse_address),
    Field(
        "auth",
        str,
        "off",
        "'off': anyone who reaches the port watches; 'token': every route needs a token",
        choices=("off", "token"),
    ),
    Field(
        "auth_exempt_loopback",
        bool,
        False,
        "with auth 'token', requests from loopback need none (nginx authenticates)",
        None,
    ),
    Field(
        "limits",
        dict,
        {},
        "rate limits and session caps",
        lambda v: LimitsConfig(**take_fields(v, "titanium.http.limits", LIMITS_FIELDS)),
        dump=lambda limits: dump_fields(limits, LIMITS_FIELDS),
    ),
)


def _stun_url(value: str) -> str:
    if not re.match(r"^stuns?:[^\s]+$", value):
        raise ValueError("a STUN URL such as stun:stun.example.org:3478")
    return value


def _turn_urls(value: str | list[str]) -> tuple[str, ...]:
    urls = [value] if isinstance(value, str) else value
    if not urls or not all(isinstance(u, str) and re.match(r"^turns?:[^\s]+$", u) for u in urls):
        raise ValueError("a TURN URL or list of them, such as turn:turn.example.org:3478")
    return tuple(urls)


TURN_FIELDS = (
    Field("urls", (str, list), None, "TURN server URL(s)", _turn_urls),
    Field("username", str, "", "TURN user name", None, dump=lambda v: v or ""),
    Field("credential", str, "", "TURN password", None, dump=lambda v: v or ""),
)


def _stun_servers(value: list[Any]) -> tuple[str, ...]:
    stun = Field("url", str, None, "STUN URL", _stun_url)
    return tuple(
        stun.check(url, f"mirage.titanium_streams.stun_servers[{i}]") for i, url in enumerate(value)
    )


def _turn_servers(value: list[Any]) -> tuple[IceServer, ...]:
    servers: list[IceServer] = []
    for i, turn in enumerate(value):
        path = f"mirage.titanium_streams.turn_servers[{i}]"
        if not isinstance(turn, dict) or "urls" not in turn:
            raise ConfigError(path, "an object with urls, username and credential")
        v = take_fields(turn, path, TURN_FIELDS)
        servers.append(IceServer(v["urls"], v["username"] or None, v["credential"] or None))
    return tuple(servers)


MIRAGE_FIELDS = (
    Field("enabled", bool, False, "remote viewing through the Mirage proxy", None),
    Field("signaling_port", int, 8443, "the proxy's signalling port", range=(1, 65535)),
    Field("stun_servers", list, [], "STUN URLs", _stun_servers),
    Field(
        "turn_servers",
        list,
        [],
        "TURN servers {urls, username, credential}",
        _turn_servers,
        dump=lambda servers: [dump_fields(s, TURN_FIELDS) for s in servers],
    ),
)
TITANIUM_FIELDS = (
    Field("enabled", bool, True, "false: Titanium starts no service", None),
    Field("cameras", list, [{}], "the cameras to stream", None),
    Field("streaming", dict, {}, "viewer settings", None),
    Field("http", dict, {}, "the HTTP front door", None),
    Field("webrtc", dict, {}, "WebRTC peers", None),
    Field("governor", dict, {}, "print protection and the control socket", None),
    Field("runtime_dir", str, "", "folder for sockets and shared-memory names", None),
    Field("state_dir", str, "", "folder for what survives a restart (tokens)", None),
)
TOP_FIELDS = (
    Field("titanium", dict, {}, "Titanium's settings", None),
    Field("mirage", dict, {}, "remote viewing through the Mirage proxy", None),
)


def _cameras(
    raw_cams: list[Any], find_camera: Callable[[], str | None] | None
) -> tuple[CameraConfig, ...]:
    raw_cams = raw_cams or [{}]
    cameras: list[CameraConfig] = []
    for i, cam in enumerate(raw_cams):
        path = f"titanium.cameras[{i}]"
        if not isinstance(cam, dict):
            raise ConfigError(path, "an object")
        values = take_fields(cam, path, CAMERA_FIELDS)
        if len(raw_cams) > 1 and "id" not in cam:
            values["id"] = f"cam{i}"
        if values["device"] == "auto":
            values["device"] = _find_camera(find_camera) or "testpattern"
        if any(c.id == values["id"] for c in cameras):
            raise ConfigError(f"{path}.id", f"unique camera ids; {values['id']!r} is used twice")
        cameras.append(CameraConfig(**values))
    return tuple(cameras)


def _find_camera(find_camera: Callable[[], str | None] | None) -> str | None:
    if find_camera is None:  # imported here: linuxpy only where a device is 'auto'
        from titanium.common.discover import find_first_camera

        find_camera = find_first_camera
    return find_camera()


def parse_config(
    raw: Any,
    source: str = "<config>",
    find_camera: Callable[[], str | None] | None = None,
) -> Config:
    """Validate a decoded JSON document into a :class:`Config`, or raise ConfigError.

    ``device: "auto"`` becomes the first V4L2 camera that ``find_camera`` returns (by default
    the first camera on this machine), else the test pattern; with no cameras at all, one
    automatic camera is configured. Whoever parses a config resolves it the same way.
    """
    if not isinstance(raw, dict):
        raise ConfigError("", "a JSON object with a 'titanium' key")
    top = take_fields(raw, "", TOP_FIELDS)
    section = take_fields(top["titanium"], "titanium", TITANIUM_FIELDS)
    cameras = _cameras(section["cameras"], find_camera)
    governor = parse_governor(section["governor"])
    for i, cam in enumerate(cameras):
        if cam.cpu is not None and cam.cpu in governor.printer_cpus:
            raise ConfigError(
                f"titanium.cameras[{i}].cpu",
                f"a CPU not in titanium.governor.printer_cpus {list(governor.printer_cpus)}",
                cam.cpu,
            )
    block = take_mirage(top["mirage"])
    mirage = MirageConfig(
        **take_fields(block["titanium_streams"], "mirage.titanium_streams", MIRAGE_FIELDS)
    )
    return Config(
        enabled=section["enabled"],
        cameras=cameras,
        streaming=StreamingConfig(
            **take_fields(section["streaming"], "titanium.streaming", STREAMING_FIELDS)
        ),
        http=HttpConfig(**take_fields(section["http"], "titanium.http", HTTP_FIELDS)),
        webrtc=WebrtcConfig(**take_fields(section["webrtc"], "titanium.webrtc", WEBRTC_FIELDS)),
        governor=governor,
        runtime_dir=(
            Path(section["runtime_dir"]) if section["runtime_dir"] else default_runtime_dir()
        ),
        mirage=mirage,
        state_dir=Path(section["state_dir"]) if section["state_dir"] else default_state_dir(),
        mirage_link=parse_link(block, mirage.signaling_port),
        source=source,
    )


def load_config(
    path: str | os.PathLike[str] | None,
    find_camera: Callable[[], str | None] | None = None,
) -> Config:
    """Load and validate the config file at ``path``; ``None`` means all defaults."""
    if path is None:
        return parse_config({}, "defaults", find_camera)
    return parse_config(read_json_file(path), str(path), find_camera)


def config_to_json(config: Config) -> dict[str, Any]:
    """The config as a document :func:`parse_config` reads back to an equal Config: what
    ``titaniumctl up`` hands every service, with defaults and ``auto`` resolved once."""
    return {
        "titanium": {
            "enabled": config.enabled,
            "cameras": [dump_fields(c, CAMERA_FIELDS) for c in config.cameras],
            "streaming": dump_fields(config.streaming, STREAMING_FIELDS),
            "http": dump_fields(config.http, HTTP_FIELDS),
            "webrtc": dump_fields(config.webrtc, WEBRTC_FIELDS),
            "governor": governor_to_json(config.governor),
            "runtime_dir": str(config.runtime_dir),
            "state_dir": str(config.state_dir),
        },
        "mirage": {
            "titanium_streams": dump_fields(config.mirage, MIRAGE_FIELDS),
            **link_to_json(config.mirage_link),
        },
    }
