"""CPU affinity, scheduling policy, niceness and I/O priority for each running service,
applied to every thread (Linux keeps all four per thread, and a service's zmq and worker
threads exist before the governor sees it) and read back from the kernel to prove it held.

Profiles, from config:

- capture: its camera's ``cpu`` (else every CPU but the printer's), SCHED_FIFO at its
  ``realtime_priority`` (SCHED_OTHER when 0); niceness left alone.
- encoder: every CPU but the printer's, ``nice``, ``ionice``; SCHED_IDLE when its camera
  is low priority (background work runs only when nothing else wants the CPU).
- webrtc, mjpeg, governor: every CPU but the printer's; ``nice`` and ``ionice`` for the
  servers, the governor itself at nice 0 (it must notice load while under it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from titanium.common.config import Config

log = logging.getLogger("titanium.governor.actuate")

POLICY_NAMES = {os.SCHED_OTHER: "other", os.SCHED_FIFO: "fifo", os.SCHED_IDLE: "idle"}
SCHED_RESET_ON_FORK = 0x40000000  # or-ed into sched_getscheduler's answer when set
IONICE = {"best-effort": (psutil.IOPRIO_CLASS_BE, 7), "idle": (psutil.IOPRIO_CLASS_IDLE, 0)}


@dataclass(frozen=True)
class Profile:
    cpus: frozenset[int] | None  # None: leave the affinity alone
    policy: int
    rt_priority: int
    nice: int | None  # None: leave it alone
    ionice: tuple[int, int] | None  # (class, level)

    def describe(self) -> dict[str, Any]:
        return {
            "cpus": sorted(self.cpus) if self.cpus is not None else None,
            "policy": POLICY_NAMES.get(self.policy, str(self.policy)),
            "rt_priority": self.rt_priority,
            "nice": self.nice,
            "ionice": None if self.ionice is None else [int(x) for x in self.ionice],
        }


@dataclass(frozen=True)
class ThreadSched:
    """What the kernel says about one thread."""

    cpus: frozenset[int]
    policy: int
    rt_priority: int
    nice: int
    ionice: tuple[int, int] | None  # read only where a profile sets it

    def matches(self, p: Profile) -> bool:
        return (
            (p.cpus is None or self.cpus == p.cpus)
            and self.policy == p.policy
            and self.rt_priority == p.rt_priority
            and (p.nice is None or self.nice == p.nice)
            and (p.ionice is None or self.ionice == p.ionice)
        )

    def describe(self) -> dict[str, Any]:
        return {
            "cpus": sorted(self.cpus),
            "policy": POLICY_NAMES.get(self.policy, str(self.policy)),
            "rt_priority": self.rt_priority,
            "nice": self.nice,
            "ionice": None if self.ionice is None else list(self.ionice),
        }


def profiles(config: Config, available: Iterable[int]) -> dict[str, Profile]:
    """The profile of every service, by the name it heartbeats under."""
    g = config.governor
    avail = frozenset(available)
    spare = avail - frozenset(g.printer_cpus)
    if g.printer_cpus and not spare:
        log.warning(
            "printer_cpus %s leave no CPU for Titanium (this process may use %s); not pinning",
            list(g.printer_cpus),
            sorted(avail),
        )
    off_printer = spare if g.printer_cpus and spare else None
    io = IONICE.get(g.ionice)
    out: dict[str, Profile] = {}
    for cam in config.cameras:
        pinned = frozenset({cam.cpu}) if cam.cpu is not None and cam.cpu in avail else None
        fifo = cam.realtime_priority > 0
        out[f"capture-{cam.id}"] = Profile(
            pinned or off_printer,
            os.SCHED_FIFO if fifo else os.SCHED_OTHER,
            cam.realtime_priority if fifo else 0,
            None,
            None,
        )
        idle = cam.priority == "low"
        out[f"encoder-{cam.id}"] = Profile(
            off_printer, os.SCHED_IDLE if idle else os.SCHED_OTHER, 0, g.nice, io
        )
    for name in ("webrtc", "mjpeg"):
        out[name] = Profile(off_printer, os.SCHED_OTHER, 0, g.nice, io)
    out["governor"] = Profile(off_printer, os.SCHED_OTHER, 0, 0, None)
    return out


def _tasks(pid: int, proc: Path) -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir(proc / str(pid) / "task"))
    except FileNotFoundError:
        return []


def read_thread(tid: int, ionice: psutil.Process | None = None) -> ThreadSched:
    """One thread's affinity, policy, real-time priority and niceness as the kernel holds
    them (the syscalls /proc's stat and status fields are made from, at a fraction of the
    cost of opening and parsing both files), and its I/O priority from ``ionice``'s
    process when given."""
    policy = os.sched_getscheduler(tid) & ~SCHED_RESET_ON_FORK
    io = None
    if ionice is not None:
        cls, level = ionice.ionice()
        io = (int(cls), int(level))
    return ThreadSched(
        frozenset(os.sched_getaffinity(tid)),
        policy,
        os.sched_getparam(tid).sched_priority,
        os.getpriority(os.PRIO_PROCESS, tid),
        io,
    )


class Actuator:
    """Applies profiles to PIDs, reading every thread back; a PID that checked out is
    checked again only now and then (``apply`` is called per heartbeat PID by the
    governor, which decides how often)."""

    def __init__(self, wanted: dict[str, Profile], proc: Path = Path("/proc")) -> None:
        self.wanted = wanted
        self.proc = proc
        self.results: dict[str, dict[str, Any]] = {}
        # psutil.Process reads /proc/TID/stat when made: kept per thread for ionice, for
        # the threads of each service's current PID only.
        self._io: dict[int, dict[int, psutil.Process]] = {}

    def _threads(self, pid: int, profile: Profile) -> dict[int, ThreadSched]:
        out = {}
        kept = self._io.get(pid, {})
        ios: dict[int, psutil.Process] = {}
        for tid in _tasks(pid, self.proc):
            try:
                io = None
                if profile.ionice is not None:
                    io = ios[tid] = kept.get(tid) or psutil.Process(tid)
                out[tid] = read_thread(tid, io)
            except (FileNotFoundError, ProcessLookupError, psutil.NoSuchProcess):
                ios.pop(tid, None)
                continue  # the thread ended meanwhile
        self._io[pid] = ios
        return out

    def apply(self, name: str, pid: int) -> dict[str, Any]:
        """Set what differs on every thread of ``pid``, then read them all back; when
        nothing differed, the first read is the read-back (the governor rechecks every
        service every few seconds, and nearly always finds it as it was)."""
        profile = self.wanted.get(name)
        if profile is None:
            return {}
        old_pid = self.results.get(name, {}).get("pid")
        if old_pid is not None and old_pid != pid:
            self._io.pop(old_pid, None)  # the service restarted
        errors: list[str] = []
        seen = self._threads(pid, profile)
        changed = False
        for tid, now in seen.items():
            if now.matches(profile):
                continue
            changed = True
            try:
                _apply_thread(tid, profile, errors)
            except (FileNotFoundError, ProcessLookupError, psutil.NoSuchProcess):
                continue
            except (OSError, psutil.Error) as e:
                errors.append(f"{e.strerror if isinstance(e, OSError) else e}")
        result = self.verify(name, pid) if changed else self._result(pid, profile, seen)
        if errors and not result["ok"]:
            result["error"] = "; ".join(sorted(set(errors)))[:300]
        old = self.results.get(name, {})
        if old.get("pid") != pid or old.get("ok") != result["ok"]:
            if result["ok"]:
                log.info("%s (pid %d): %s", name, pid, profile.describe())
            else:
                log.warning("%s (pid %d): not applied: %s", name, pid, result.get("error", ""))
        self.results[name] = result
        return result

    def verify(self, name: str, pid: int) -> dict[str, Any]:
        """Every thread of ``pid`` read back against the profile of ``name``."""
        profile = self.wanted[name]
        return self._result(pid, profile, self._threads(pid, profile))

    @staticmethod
    def _result(pid: int, profile: Profile, seen: dict[int, ThreadSched]) -> dict[str, Any]:
        bad = [tid for tid, t in seen.items() if not t.matches(profile)]
        main = seen.get(pid)
        return {
            "pid": pid,
            "threads": len(seen),
            "wanted": profile.describe(),
            "actual": None if main is None else main.describe(),
            "ok": bool(seen) and not bad,
            "mismatched_threads": len(bad),
        }


def _apply_thread(tid: int, p: Profile, errors: list[str]) -> None:
    if p.cpus is not None:
        os.sched_setaffinity(tid, p.cpus)
    try:
        os.sched_setscheduler(tid, p.policy, os.sched_param(p.rt_priority))
    except PermissionError as e:  # SCHED_FIFO needs CAP_SYS_NICE or RLIMIT_RTPRIO
        errors.append(f"SCHED_{POLICY_NAMES.get(p.policy, '?').upper()} refused: {e.strerror}")
    if p.nice is not None:
        os.setpriority(os.PRIO_PROCESS, tid, p.nice)  # per thread on Linux
    if p.ionice is not None:
        psutil.Process(tid).ionice(*p.ionice)
