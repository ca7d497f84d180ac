"""What the governor reads from the board, each probe a small class taking the paths or
command it reads from, so tests point them at recorded sysfs trees (tests/fixtures/).

A probe that cannot read (no such sensor on this board, a file that went away) returns
None or nothing: the governor works with what the board has.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from titanium.common.govconfig import GovernorConfig
from titanium.services.governor.throttled import Throttled, parse_throttled

log = logging.getLogger("titanium.governor.probes")


@dataclass(frozen=True)
class CpuReading:
    total: float  # % of all CPUs busy since the previous reading
    per_cpu: tuple[float, ...]


class CpuProbe:
    """Busy share of the CPUs between two reads of /proc/stat (iowait counts as idle: a
    CPU waiting for the SD card is free to run the printer)."""

    def __init__(self, path: Path = Path("/proc/stat")) -> None:
        self.path = path
        self._last: dict[str, tuple[int, int]] = {}

    def read(self) -> CpuReading | None:
        """None on the first read (there is nothing to compare with yet)."""
        now: dict[str, tuple[int, int]] = {}
        for line in self.path.read_text().splitlines():
            if not line.startswith("cpu"):
                break
            name, *fields = line.split()
            v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
            now[name] = (sum(v), v[3] + v[4])
        last, self._last = self._last, now
        if not last:
            return None

        def busy(name: str) -> float:
            total = now[name][0] - last.get(name, (0, 0))[0]
            idle = now[name][1] - last.get(name, (0, 0))[1]
            return 0.0 if total <= 0 else round(100.0 * (total - idle) / total, 1)

        cpus = sorted((n for n in now if n != "cpu"), key=lambda n: int(n[3:]))
        return CpuReading(busy("cpu"), tuple(busy(n) for n in cpus))


@dataclass(frozen=True)
class MemoryReading:
    total_mb: float
    available_mb: float


class MemoryProbe:
    def __init__(self, path: Path = Path("/proc/meminfo")) -> None:
        self.path = path

    def read(self) -> MemoryReading:
        values: dict[str, int] = {}
        for line in self.path.read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                values[key] = int(rest.split()[0])  # kB
        return MemoryReading(values["MemTotal"] / 1024, values["MemAvailable"] / 1024)


class LoadProbe:
    def __init__(self, path: Path = Path("/proc/loadavg")) -> None:
        self.path = path

    def read(self) -> tuple[float, float, float]:
        a, b, c = self.path.read_text().split()[:3]
        return float(a), float(b), float(c)


@dataclass(frozen=True)
class Temperature:
    sensor: str  # 'cpu-thermal' (a thermal zone's type) or 'coretemp/Core 0' (hwmon)
    celsius: float


class ThermalZones:
    """``thermal_zone*/temp`` (millidegrees) under /sys/class/thermal, named by ``type``."""

    def __init__(self, root: Path = Path("/sys/class/thermal")) -> None:
        self.root = root

    def read(self) -> list[Temperature]:
        out = []
        for zone in sorted(self.root.glob("thermal_zone*")):
            try:
                milli = int((zone / "temp").read_text().strip())
                kind = (zone / "type").read_text().strip() or zone.name
            except (OSError, ValueError):  # some zones answer EINVAL/ENODATA when idle
                continue
            out.append(Temperature(kind, milli / 1000.0))
        return out


class PsutilSensors:
    """hwmon temperatures through psutil (x86 boards, USB sensors the thermal class lacks)."""

    def read(self) -> list[Temperature]:
        try:
            found = psutil.sensors_temperatures()
        except (OSError, AttributeError):
            return []
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

    def read(self) -> Throttled | None:
        if self.path.exists():
            try:
                return parse_throttled(self.path.read_text())
            except (OSError, ValueError) as e:
                log.debug("%s: %s", self.path, e)
                return None
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
    """CPU and PSS of Titanium's own processes. psutil keeps the previous CPU times in the
    Process object, so the objects live as long as their PIDs do."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def read(self, pids: dict[str, int], with_pss: bool) -> dict[str, ProcessReading]:
        out: dict[str, ProcessReading] = {}
        for name, pid in pids.items():
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                    proc.cpu_percent(None)  # the baseline; the first figure comes next time
                cpu = proc.cpu_percent(None)
                pss = proc.memory_full_info().pss / 1e6 if with_pss else None
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self._procs.pop(pid, None)
                continue
            out[name] = ProcessReading(pid, round(cpu, 1), None if pss is None else round(pss, 1))
        for pid in set(self._procs) - set(pids.values()):
            del self._procs[pid]
        return out


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
            CpuProbe(proc / "stat"),
            MemoryProbe(proc / "meminfo"),
            LoadProbe(proc / "loadavg"),
            temps,
            ThrottledProbe(Path(g.throttled_path), (g.vcgencmd, "get_throttled")),
            ProcessProbe(),
        )
