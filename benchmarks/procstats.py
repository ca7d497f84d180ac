"""Per-process figures read straight from /proc: CPU time, PSS, and the process tree of a
``titaniumctl up`` run.

CPU is ``utime + stime`` of /proc/PID/stat, which covers every thread of the process (the
front door's JPEG worker and zmq's I/O threads included). PSS is from /proc/PID/smaps_rollup:
shared pages (the frame ring, libraries) are split between the processes that map them, so
the PSS of all services adds up to what they cost the machine together.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class ProcessGone(Exception):
    """The process exited (or its PID now belongs to another process)."""


@dataclass(frozen=True)
class Proc:
    """A process pinned by PID and start time, so a reused PID is never mistaken for it."""

    pid: int
    start_ticks: int
    name: str

    @classmethod
    def of(cls, pid: int, name: str) -> Proc:
        return cls(pid, int(_stat_fields(pid)[19]), name)

    def alive(self) -> bool:
        try:
            fields = _stat_fields(self.pid)
        except ProcessGone:
            return False
        return int(fields[19]) == self.start_ticks and fields[0] != "Z"

    def cpu_times(self) -> tuple[float, float]:
        """(utime, stime) of every thread so far, in seconds."""
        fields = _stat_fields(self.pid)
        if int(fields[19]) != self.start_ticks:
            raise ProcessGone(f"{self.name} (pid {self.pid}) was replaced")
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK

    def cpu_seconds(self) -> float:
        return sum(self.cpu_times())

    def threads(self) -> dict[str, float]:
        """utime + stime so far of each live thread, by label: 'main' for the thread the
        process started with, else the thread's name and id ('ZMQbg/IO/0:1234')."""
        out = {}
        for task in (PROC / str(self.pid) / "task").iterdir():
            try:
                text = (task / "stat").read_text()
                comm = (task / "comm").read_text().strip()
            except (FileNotFoundError, ProcessLookupError):
                continue  # the thread ended meanwhile
            fields = text[text.rindex(")") + 2 :].split()
            label = "main" if task.name == str(self.pid) else f"{comm}:{task.name}"
            out[label] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        return out

    def pss_bytes(self) -> int:
        return pss_bytes(self.pid)

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` if this very process still runs."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after ``comm`` (index 0 is the state, 11/12 utime/stime,
    19 the start time in clock ticks); comm may hold spaces and parentheses."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError) as e:
        raise ProcessGone(f"pid {pid} is gone") from e
    return text[text.rindex(")") + 2 :].split()


def parent_of(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def cmdline(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (a scan of /proc: needs no CONFIG_PROC_CHILDREN)."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if parent_of(int(entry.name)) == pid:
                found.append(int(entry.name))
        except (ProcessGone, ValueError, IndexError):
            continue
    return sorted(found)


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def pss_parts(pid: int) -> dict[str, int]:
    """Pss and its Pss_Anon / Pss_File / Pss_Shmem parts of ``pid``, in bytes, from
    /proc/PID/smaps_rollup, keyed 'pss', 'anon', 'file', 'shmem'."""
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError) as e:
        raise ProcessGone(f"pid {pid} is gone") from e
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"):
            out[key.removeprefix("Pss_").lower()] = int(value.split()[0]) * 1024
    if "pss" not in out:
        raise ValueError(f"no Pss line in /proc/{pid}/smaps_rollup")
    return out


def pss_bytes(pid: int) -> int:
    """Proportional set size of ``pid`` from /proc/PID/smaps_rollup."""
    return pss_parts(pid)["pss"]


def all_cpu() -> dict[tuple[int, int], tuple[str, float]]:
    """utime + stime so far of every live process, keyed by (pid, start time), with its
    name. Processes that start and end between two calls escape it: for how busy the
    machine was, use :func:`machine_ticks`."""
    out = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        out[int(entry.name), int(fields[19])] = (comm, cpu)
    return out


def find_services(up_pid: int, status: dict[str, object]) -> dict[str, Proc]:
    """The processes of one ``titaniumctl up`` run, by name: 'supervisord' (``up_pid``
    itself since up execs it; its child before), then every service in /status
    ('capture-cam0', 'mjpeg', …), each checked to be supervisord's child.

    Raises LookupError when the tree and /status disagree: figures for a process that is
    not ours would be worse than none.
    """
    if "titanium.supervise" in cmdline(up_pid):
        supervisors = [up_pid]  # up exec'd supervisord (titanium/supervise.py): same PID
    else:
        supervisors = [p for p in children(up_pid) if "supervisord" in cmdline(p)]
    if len(supervisors) != 1:
        raise LookupError(f"expected one supervisord under pid {up_pid}, found {supervisors}")
    sup = supervisors[0]
    procs = {"supervisord": Proc.of(sup, "supervisord")}
    under = set(children(sup))
    services = status.get("services")
    if not isinstance(services, dict):
        raise LookupError("/status has no 'services'")
    for name, svc in sorted(services.items()):
        pid = svc.get("pid") if isinstance(svc, dict) else None
        if not isinstance(pid, int) or pid not in under:
            raise LookupError(
                f"service {name}: pid {pid} is not a child of supervisord "
                f"{sup} (children: {sorted(under)})"
            )
        procs[name] = Proc.of(pid, name)
    return procs


STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_ticks() -> dict[str, int]:
    """Clock ticks of all CPUs so far by kind, from the first line of /proc/stat (guest time
    is already inside user). Interrupt and softirq time (loopback TCP is delivered in
    softirq) belong to no process: only this shows them."""
    first = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    return dict(zip(STAT_FIELDS, (int(v) for v in first), strict=False))


def cpu_model() -> str:
    for line in (PROC / "cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"
