"""The ``titanium.governor`` section: how the governor samples the board, when it steps
quality down and up, what it protects, and where its probes read from.

Every threshold is here, with its default written once, so that tests (and boards with
unusual sensors) can make the policy fast or point the probes at recorded sysfs trees.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from titanium.common.address import Address, parse_address
from titanium.common.fields import ConfigError, Field, dump_fields, take_fields

RUNG = re.compile(r"^(\d{2,4})p(\d{1,3})$")
DEFAULT_LADDER = ["1080p30", "720p30", "720p15", "480p15", "360p5"]


@dataclass(frozen=True)
class RungSpec:
    """A ladder step as configured: at most this height and this frame rate."""

    height: int
    fps: int

    def __str__(self) -> str:
        return f"{self.height}p{self.fps}"


@dataclass(frozen=True)
class MoonrakerConfig:
    url: str  # '' = not polled
    interval: float
    timeout: float


@dataclass(frozen=True)
class GovernorConfig:
    sample_interval: float
    cpu_interval: float
    cpu_high: int
    cpu_low: int
    step_down_after: float
    calm_time: float
    temp_limit: float
    temp_resume: float
    memory_low_mb: int
    memory_reserve_mb: int
    titanium_memory_mb: int
    first_layer_quality: RungSpec
    ladder: tuple[RungSpec, ...]
    printer_cpus: tuple[int, ...]
    nice: int
    ionice: str
    thermal_dir: str
    psutil_sensors: bool
    throttled_path: str
    vcgencmd: str
    proc_dir: str
    control_tcp: Address | None  # None: the control socket is ipc only
    moonraker: MoonrakerConfig


def rung_spec(value: str) -> RungSpec:
    m = RUNG.match(value)
    if not m or not 16 <= int(m.group(1)) <= 4096 or not 1 <= int(m.group(2)) <= 120:
        raise ValueError("a rung such as '720p15': height 16–4096, 'p', frame rate 1–120")
    return RungSpec(int(m.group(1)), int(m.group(2)))


def _ladder(value: list[Any]) -> tuple[RungSpec, ...]:
    if not value or not all(isinstance(v, str) for v in value):
        raise ValueError("a non-empty list of rungs such as ['720p30', '480p15', '360p5']")
    rungs = tuple(rung_spec(v) for v in value)
    for a, b in itertools.pairwise(rungs):
        if b.height > a.height or b.fps > a.fps or b == a:
            raise ValueError(f"rungs from best to worst: {b} cannot follow {a}")
    return rungs


def _number(lo: float, hi: float, unit: str) -> Callable[[float], float]:
    def check(value: float) -> float:
        if not lo <= value <= hi:
            raise ValueError(f"a number of {unit} from {lo:g} to {hi:g}")
        return float(value)

    return check


def _cpus(value: list[Any]) -> tuple[int, ...]:
    if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 1024 for c in value):
        raise ValueError("a list of CPU indexes, for example [3]")
    return tuple(sorted(set(value)))


def _listen_or_empty(value: str) -> Address | None:
    if value == "":
        return None
    try:
        return parse_address(value, 1, 65534)
    except ValueError as e:
        raise ValueError(f"'' (ipc only) or {e}; events go out on PORT+1") from None


def _url_or_empty(value: str) -> str:
    if value and not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("'' (not polled) or Moonraker's URL, for example http://127.0.0.1:7125")
    return value.rstrip("/")


SECONDS = _number(0.05, 3600, "seconds")
CELSIUS = _number(20, 150, "°C")
MOONRAKER_FIELDS = (
    Field("url", str, "", "Moonraker's URL, '' = not polled", _url_or_empty),
    Field("interval", (int, float), 2.0, "seconds between polls", SECONDS),
    Field("timeout", (int, float), 1.0, "seconds to wait for an answer", SECONDS),
)
GOVERNOR_FIELDS = (
    Field("sample_interval", (int, float), 1.0, "seconds between samples", SECONDS),
    Field("cpu_interval", (int, float), 0.2, "seconds between CPU reads for load", SECONDS),
    Field("cpu_high", int, 60, "printing and CPU % above this: step down", range=(1, 100)),
    Field("cpu_low", int, 40, "CPU % below this counts as calm", range=(0, 99)),
    Field("step_down_after", (int, float), 1.2, "seconds over cpu_high per step", SECONDS),
    Field("calm_time", (int, float), 30.0, "seconds of calm before a step up", SECONDS),
    Field("temp_limit", (int, float), 80.0, "°C at which streams pause", CELSIUS),
    Field("temp_resume", (int, float), 75.0, "°C below which the heat is over", CELSIUS),
    Field("memory_low_mb", int, 150, "MB available below which to step down", range=(0, 65536)),
    Field("memory_reserve_mb", int, 64, "emergency reserve in MB", range=(0, 65536)),
    Field("titanium_memory_mb", int, 0, "Titanium's PSS limit in MB, 0 = none", range=(0, 65536)),
    Field("first_layer_quality", str, "480p15", "best rung during the first layer", rung_spec),
    Field("ladder", list, DEFAULT_LADDER, "quality steps, best first", _ladder),
    Field("printer_cpus", list, [], "CPUs kept free for the printer", _cpus),
    Field("nice", int, 5, "niceness of encoders and servers", range=(0, 19)),
    Field(
        "ionice",
        str,
        "best-effort",
        "I/O class of encoders and servers",
        choices=("best-effort", "idle", "none"),
    ),
    Field("thermal_dir", str, "/sys/class/thermal", "thermal zones to read", None),
    Field("psutil_sensors", bool, True, "also read hwmon sensors through psutil", None),
    Field(
        "throttled_path",
        str,
        "/sys/devices/platform/soc/soc:firmware/get_throttled",
        "the Pi firmware's throttling flags",
        None,
    ),
    Field("vcgencmd", str, "vcgencmd", "command asked when throttled_path is missing", None),
    Field("proc_dir", str, "/proc", "procfs to read CPU and memory from", None),
    Field(
        "control_tcp",
        str,
        "",
        "HOST:PORT of the control socket over TCP",
        _listen_or_empty,
        dump=lambda a: str(a or ""),
    ),
    Field(
        "moonraker",
        dict,
        {},
        "Moonraker to read the print state from",
        None,
        dump=lambda m: dump_fields(m, MOONRAKER_FIELDS),
    ),
)


def parse_governor(raw: Any, path: str = "titanium.governor") -> GovernorConfig:
    """Validate the governor section; thresholds that must be ordered are checked too."""
    v = take_fields(raw, path, GOVERNOR_FIELDS)
    if v["cpu_low"] >= v["cpu_high"]:
        raise ConfigError(f"{path}.cpu_low", f"less than cpu_high ({v['cpu_high']})", v["cpu_low"])
    if v["temp_resume"] >= v["temp_limit"]:
        raise ConfigError(
            f"{path}.temp_resume", f"below temp_limit ({v['temp_limit']:g})", v["temp_resume"]
        )
    if v["memory_reserve_mb"] > v["memory_low_mb"]:
        raise ConfigError(
            f"{path}.memory_reserve_mb",
            f"at most memory_low_mb ({v['memory_low_mb']})",
            v["memory_reserve_mb"],
        )
    v["moonraker"] = MoonrakerConfig(
        **take_fields(v["moonraker"], f"{path}.moonraker", MOONRAKER_FIELDS)
    )
    return GovernorConfig(**v)


def governor_to_json(g: GovernorConfig) -> dict[str, Any]:
    """The section as parse_governor reads it back."""
    return dump_fields(g, GOVERNOR_FIELDS)
