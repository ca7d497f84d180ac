"""What the governor reads from the board, each probe a small class taking the paths or
command it reads from, so tests point them at recorded sysfs trees (tests/fixtures/).

A probe that cannot read (no such sensor on this board, a file that went away) returns
None or nothing: the governor works with what the board has.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from titanium.common.govconfig import GovernorConfig
from titanium.services.governor.procread import ProcFile
from titanium.services.governor.throttled import Throttled, parse_throttled

log = logging.getLogger("titanium.governor.probes")
TICKS = os.sysconf("SC_CLK_TCK")
ZONES_RELIST = 30.0  # seconds between listings of the thermal zones


@dataclass(frozen=True)
class CpuReading:
    total: float  # % of all CPUs busy since the previous reading
    per_cpu: tuple[float, ...]


class CpuProbe:
    """Busy share of the CPUs between two reads of /proc/stat (iowait counts as idle: a
    CPU waiting for the SD card is free to run the printer). ``per_cpu=False`` parses the
    summary line only (the load rule's read, several a second)."""

    def __init__(self, path: Path = Path("/proc/stat"), per_cpu: bool = True) -> None:
        self.path = path
        self.per_cpu = per_cpu
        self._file = ProcFile(path)
        self._last: dict[bytes, tuple[int, int]] = {}

    def reset(self) -> None:
        """Forget the last read: the next one starts a new window (and returns None)."""
        self._last = {}

    def read(self) -> CpuReading | None:
        """None on the first read (there is nothing to compare with yet)."""
        now: dict[bytes, tuple[int, int]] = {}
        text = self._file.read()
        lines = text.split(b"\n") if self.per_cpu else [text[: text.find(b"\n")]]
        for line in lines:
            if not line.startswith(b"cpu"):
                break
            name, *fields = line.split()
            v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
            now[name] = (sum(v), v[3] + v[4])
        last, self._last = self._last, now
        if not last:
            return None

        def busy(name: bytes) -> float:
            total = now[name][0] - last.get(name, (0, 0))[0]
            idle = now[name][1] - last.get(name, (0, 0))[1]
            return 0.0 if total <= 0 else round(100.0 * (total - idle) / total, 1)

        cpus = sorted((n for n in now if n != b"cpu"), key=lambda n: int(n[3:]))
        return CpuReading(busy(b"cpu"), tuple(busy(n) for n in cpus))


@dataclass(frozen=True)
class MemoryReading:
    total_mb: float
    available_mb: float


def _kb(text: bytes, key: bytes) -> int:
    """The value of ``key`` (kB) in a ``Key:   value kB`` file, without parsing the rest."""
    at = text.index(key) + len(key)
    return int(text[at : text.index(b"\n", at)].split()[0])


class MemoryProbe:
    def __init__(self, path: Path = Path("/proc/meminfo")) -> None:
        self.path = path
        self._file = ProcFile(path)

    def read(self) -> MemoryReading:
        text = self._file.read()
        total, available = _kb(text, b"MemTotal:"), _kb(text, b"MemAvailable:")
        return MemoryReading(total / 1024, available / 1024)


class LoadProbe:
    def __init__(self, path: Path = Path("/proc/loadavg")) -> None:
        self.path = path
        self._file = ProcFile(path)

    def read(self) -> tuple[float, float, float]:
        a, b, c = self._file.read().split()[:3]
        return float(a), float(b), float(c)


@dataclass(frozen=True)
class Temperature:
    sensor: str  # 'cpu-thermal' (a thermal zone's type) or 'coretemp/Core 0' (hwmon)
    celsius: float


class ThermalZones:
    """``thermal_zone*/temp`` (millidegrees) under /sys/class/thermal, named by ``type``."""

    def __init__(self, root: Path = Path("/sys/class/thermal")) -> None:
        self.root = root
        self._zones: list[Path] = []
        self._listed_at = float("-inf")

    def read(self) -> list[Temperature]:
        # Listing the class directory costs more than reading every zone; zones come and
        # go only with a module load, so the list is taken again now and then.
        now = time.monotonic()
        if now - self._listed_at >= ZONES_RELIST:
            self._zones, self._listed_at = sorted(self.root.glob("thermal_zone*")), now
        out = []
        for zone in self._zones:
            try:
                milli = int((zone / "temp").read_text().strip())
                kind = (zone / "type").read_text().strip() or zone.name
            except (OSError, ValueError):  # some zones answer EINVAL/ENODATA when idle
                continue
            out.append(Temperature(kind, milli / 1000.0))
        return out


class PsutilSensors:
    """hwmon temperatures through psutil (x86 boards, USB sensors the thermal class lacks).
    Where psutil finds none (a Pi has its temperature in the thermal class only), it is
    asked again every ``ZONES_RELIST`` seconds, not every sample: its search of
    /sys/class/hwmon costs about 0.1 ms even when there is nothing to find."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._none_at = float("-inf")  # when psutil last found no sensor

    def read(self) -> list[Temperature]:
        now = self.clock()
        if now - self._none_at < ZONES_RELIST:
            return []
        try:
            found = psutil.sensors_temperatures()
        except (OSError, AttributeError):
            found = {}
        if not found:
            self._none_at = now
        return [
            Temperature(f"{chip}/{t.label or 'temp'}", float(t.current))
            for chip, temps in found.items()
            for t in temps
            if t.current is not None
        ]


class ThrottledProbe:
    """The Pi firmware's get_throttled value: the sysfs file where the kernel has it, else
    ``vcgencmd get_throttled``; None on boards with neither."""

    def __init__(self, path: Path, command: Sequence[str] = ("vcgencmd", "get_throttled")) -> None:
        self.path = path
        self.command = list(command)
        self._command_failed = False
        self._missing_at = float("-inf")

    def read(self) -> Throttled | None:
        if self._command_failed and time.monotonic() - self._missing_at < ZONES_RELIST:
            return None  # neither the file nor the command: look for the file now and then
        if self.path.exists():
            try:
                return parse_throttled(self.path.read_text())
            except (OSError, ValueError) as e:
                log.debug("%s: %s", self.path, e)
                return None
        self._missing_at = time.monotonic()
        if self._command_failed:
            return None
        if shutil.which(self.command[0]) is None:
            self._command_failed = True  # not a Pi (or no firmware tools): never ask again
            return None
        try:
            out = subprocess.run(self.command, capture_output=True, text=True, timeout=2)
            return parse_throttled(out.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            log.warning(
                "%s does not give the throttling flags (%s); not asked again",
                " ".join(self.command),
                e,
            )
            self._command_failed = True
            return None


@dataclass(frozen=True)
class ProcessReading:
    pid: int
    cpu: float  # % of one CPU since the previous reading
    pss_mb: float | None  # None when not measured this time (PSS is read less often)


class ProcessProbe:
    """CPU and PSS of Titanium's own processes, from /proc/PID/stat and smaps_rollup read
    directly (psutil cost about 0.35 ms a process a read). The stat file of each PID stays
    open: once its process ends, reads fail (ESRCH) even if the PID is reused."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self.proc = proc
        self._stats: dict[int, ProcFile] = {}
        self._last: dict[int, tuple[float, int]] = {}  # pid -> (monotonic, CPU ticks)

    def read(self, pids: dict[str, int], with_pss: bool) -> dict[str, ProcessReading]:
        out: dict[str, ProcessReading] = {}
        for name, pid in pids.items():
            stat = self._stats.get(pid)
            if stat is None:
                stat = self._stats[pid] = ProcFile(self.proc / str(pid) / "stat")
            try:
                text = stat.read()
                fields = text[text.rindex(b")") + 2 :].split()  # fields[0] is field 3
                ticks = int(fields[11]) + int(fields[12])  # utime + stime
                pss = self._pss_mb(pid) if with_pss else None
            except (OSError, ValueError, IndexError):
                self._forget(pid)
                continue
            now = time.monotonic()
            then, before = self._last.get(pid, (now, ticks))
            self._last[pid] = (now, ticks)
            cpu = 0.0 if now <= then else 100.0 * (ticks - before) / TICKS / (now - then)
            out[name] = ProcessReading(pid, round(cpu, 1), None if pss is None else round(pss, 1))
        for pid in set(self._stats) - set(pids.values()):
            self._forget(pid)
        return out

    def _pss_mb(self, pid: int) -> float:
        text = (self.proc / str(pid) / "smaps_rollup").read_bytes()
        return _kb(text, b"\nPss:") * 1024 / 1e6

    def _forget(self, pid: int) -> None:
        stat = self._stats.pop(pid, None)
        if stat is not None:
            stat.close()
        self._last.pop(pid, None)


@dataclass
class Probes:
    """Every probe the governor samples, built from config (tests pass their own paths)."""

    cpu: CpuProbe  # over sample_interval: status and the calm rule
    cpu_short: CpuProbe  # over cpu_interval: the load rule
    memory: MemoryProbe
    load: LoadProbe
    temperatures: list[ThermalZones | PsutilSensors]
    throttled: ThrottledProbe
    processes: ProcessProbe

    @classmethod
    def from_config(cls, g: GovernorConfig) -> Probes:
        proc = Path(g.proc_dir)
        temps: list[ThermalZones | PsutilSensors] = [ThermalZones(Path(g.thermal_dir))]
        if g.psutil_sensors:
            temps.append(PsutilSensors())
        return cls(
            CpuProbe(proc / "stat"),
            CpuProbe(proc / "stat", per_cpu=False),
            MemoryProbe(proc / "meminfo"),
            LoadProbe(proc / "loadavg"),
            temps,
            ThrottledProbe(Path(g.throttled_path), (g.vcgencmd, "get_throttled")),
            ProcessProbe(),
        )
