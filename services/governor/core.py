"""The governor's state between samples: probe readings in, the policy's decision out as
bus messages (QualityCommand, ViewerAdmission) and events, plus what the bus tells it
(heartbeats → PIDs to actuate, camera online/offline, viewer counts)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from titanium.common.config import Config
from titanium.common.messages import (
    CameraStatus,
    GovernorEvent,
    Heartbeat,
    Message,
    QualityCommand,
    ViewerAdmission,
    ViewerCount,
)
from titanium.services.governor import policy
from titanium.services.governor.actuate import Actuator
from titanium.services.governor.ladder import build_ladder
from titanium.services.governor.printer import PrinterStates
from titanium.services.governor.probes import Probes
from titanium.services.governor.throttled import Throttled

log = logging.getLogger("titanium.governor")
# Seconds between PSS reads: smaps_rollup walks the page tables (about 1 ms a process on
# the test machine), where CPU times are one short read. Memory pressure itself comes from
# MemAvailable every sample; PSS is for the titanium_memory_mb limit and status, and only
# for status (every PSS_STATUS_EVERY) when no limit is set.
PSS_EVERY = 15.0
PSS_STATUS_EVERY = 60.0
HEARTBEAT_STALE = 5.0  # a PID not heard of for this long is forgotten


@dataclass
class Board:
    """The last sample in full, for ``status``."""

    readings: policy.Readings = field(default_factory=policy.Readings)
    per_cpu: tuple[float, ...] = ()
    load: tuple[float, float, float] | None = None
    mem_total_mb: float | None = None
    temps: list[dict[str, Any]] = field(default_factory=list)
    throttled: Throttled | None = None
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)


class Governor:
    def __init__(
        self,
        config: Config,
        probes: Probes,
        actuator: Actuator,
        publish: Callable[[Message], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.g = config.governor
        self.probes = probes
        self.actuator = actuator
        self.publish = publish
        self.clock = clock
        self.cameras = [
            policy.CameraPolicy(
                c.id, c.priority, build_ladder(c, self.g.ladder, config.streaming.default_rung)
            )
            for c in config.cameras
        ]
        self.ladders = {c.id: c.ladder for c in self.cameras}
        self.state = policy.State()
        self.printer = PrinterStates()
        self.board = Board()
        self.decision: policy.Decision | None = None
        self.pids: dict[str, tuple[int, float]] = {}  # service -> (pid, last heard)
        self.online: dict[str, bool] = {}
        self.capture_paused: dict[str, bool] = {}
        self.viewers: dict[tuple[str, str], dict[str, int]] = {}
        self._pss_at = float("-inf")
        self._checked: dict[str, tuple[int, float]] = {}  # service -> (pid, when actuated)
        self.restarted = False  # a service came up since the last repeat: it needs them now

    @property
    def protect(self) -> bool:
        return self.config.streaming.print_protection

    # -- sampling ---------------------------------------------------------------------

    def sample(self) -> None:
        """Read every probe once; what a board lacks stays None."""
        now = self.clock()
        cpu = self.probes.cpu.read()
        mem = self.probes.memory.read()
        temps = [t for probe in self.probes.temperatures for t in probe.read()]
        hottest = max(temps, key=lambda t: t.celsius, default=None)
        throttled = self.probes.throttled.read()
        pss_every = PSS_EVERY if self.g.titanium_memory_mb else PSS_STATUS_EVERY
        with_pss = now - self._pss_at >= pss_every
        if with_pss:
            self._pss_at = now
        pids = {name: pid for name, (pid, _) in self.pids.items()}
        procs = self.probes.processes.read(pids, with_pss)
        pss = self.board.readings.titanium_pss_mb
        if with_pss and procs:
            pss = round(sum(p.pss_mb or 0.0 for p in procs.values()), 1)
        self.board = Board(
            policy.Readings(
                cpu=cpu.total if cpu else None,
                cpu_short=self.board.readings.cpu_short,
                mem_available_mb=round(mem.available_mb, 1),
                titanium_pss_mb=pss,
                temp_c=hottest.celsius if hottest else None,
                temp_sensor=hottest.sensor if hottest else "",
                throttled_now=throttled.now if throttled else (),
            ),
            per_cpu=cpu.per_cpu if cpu else (),
            load=self.probes.load.read(),
            mem_total_mb=round(mem.total_mb, 1),
            temps=[{"sensor": t.sensor, "celsius": t.celsius} for t in temps],
            throttled=throttled,
            processes={
                name: {
                    "pid": p.pid,
                    "cpu": p.cpu,
                    "pss_mb": p.pss_mb
                    if p.pss_mb is not None
                    else self.board.processes.get(name, {}).get("pss_mb"),
                }
                for name, p in procs.items()
            },
        )

    def load_rule_live(self) -> bool:
        """Whether decisions are due every ``cpu_interval`` rather than every full sample:
        while printing (only then can the load rule step down) or while a hold runs (its
        step is due ``step_down_after`` from its start, not at the next sample)."""
        return self.printer.current().printing or self.state.pressure_since is not None

    def sample_cpu(self) -> None:
        """Read the load rule's CPU (every ``cpu_interval``: one short read of /proc/stat,
        where the full sample costs more), only while printing: otherwise the rule cannot
        fire, and the window starts afresh when printing does."""
        if not self.printer.current().printing:
            self.probes.cpu_short.reset()
            if self.board.readings.cpu_short is not None:
                readings = dataclasses.replace(self.board.readings, cpu_short=None)
                self.board = dataclasses.replace(self.board, readings=readings)
            return
        cpu = self.probes.cpu_short.read()
        readings = dataclasses.replace(self.board.readings, cpu_short=cpu.total if cpu else None)
        self.board = dataclasses.replace(self.board, readings=readings)

    # -- deciding ---------------------------------------------------------------------

    def decide(self) -> policy.Decision:
        """Run the policy on the last sample; publish what changed, with its reason."""
        d = policy.decide(
            self.board.readings,
            self.printer.current(),
            self.clock(),
            self.state,
            self.cameras,
            self.g,
            self.protect,
        )
        self.state = d.state
        prev = self.decision
        for cam in self.cameras:
            new = d.cameras[cam.id]
            old = prev.cameras[cam.id] if prev else None
            if old is not None and old.index == new.index:
                continue
            self.publish(self.command(cam.id, d))
            if old is None:
                continue
            log.info("%s: %s → %s (%s)", cam.id, old.rung.label, new.rung.label, new.reason)
            detail = {**new.rung.describe(), "previous": old.rung.label}
            if new.rung.paused:
                self.event("stream.paused", cam.id, new.reason, detail)
            elif old.rung.paused:
                self.event("stream.resumed", cam.id, new.reason, detail)
            else:
                self.event("quality.changed", cam.id, new.reason, detail)
        if prev is None or prev.admission != d.admission:
            self.publish(ViewerAdmission(d.admission, d.admission_reason))
            if prev is not None:
                log.info("viewers served: %s and up (%s)", d.admission, d.admission_reason)
                self.event(
                    "admission.changed", "", d.admission_reason, {"min_priority": d.admission}
                )
        self.decision = d
        return d

    def command(self, camera: str, d: policy.Decision) -> QualityCommand:
        cd = d.cameras[camera]
        r = cd.rung
        return QualityCommand(
            camera, r.label, r.width, r.height, r.fps, r.bitrate, r.paused, cd.reason
        )

    def repeat(self) -> None:
        """Every command and the admission again, for services that (re)started since."""
        self.restarted = False
        if self.decision is None:
            return
        for cam in self.cameras:
            self.publish(self.command(cam.id, self.decision))
        self.publish(ViewerAdmission(self.decision.admission, self.decision.admission_reason))

    def event(self, kind: str, camera: str, reason: str, detail: dict[str, Any]) -> None:
        self.publish(GovernorEvent(kind, camera, reason, detail, time.time()))

    # -- what the bus says ------------------------------------------------------------

    def on_message(self, msg: Message) -> None:
        if isinstance(msg, Heartbeat):
            known = self.pids.get(msg.service)
            if known is None or known[0] != msg.pid:
                self.restarted = True
            self.pids[msg.service] = (msg.pid, self.clock())
        elif isinstance(msg, CameraStatus):
            was = self.online.get(msg.camera)
            self.online[msg.camera] = msg.online
            self.capture_paused[msg.camera] = msg.paused
            if was != msg.online and (was is not None or not msg.online):
                kind = "camera.online" if msg.online else "camera.offline"
                self.event(kind, msg.camera, msg.error, {"source": msg.source})
        elif isinstance(msg, ViewerCount):
            key = (msg.service, msg.camera)
            old = self.viewers.get(key, {})
            self.viewers[key] = dict(msg.viewers)
            for prio in sorted(set(old) | set(msg.viewers)):
                delta = msg.viewers.get(prio, 0) - old.get(prio, 0)
                if delta:
                    kind = "viewer.joined" if delta > 0 else "viewer.left"
                    detail = {"service": msg.service, "priority": prio, "count": abs(delta)}
                    self.event(kind, msg.camera, "", detail)

    def actuate(self, recheck: float) -> None:
        """Apply the scheduling profile to each service heard from: at once for a new
        PID, every ``recheck`` seconds after."""
        if not self.protect:
            return
        now = self.clock()
        for name, (pid, heard) in list(self.pids.items()):
            if now - heard > HEARTBEAT_STALE:
                del self.pids[name]
                continue
            done = self._checked.get(name)
            if done is None or done[0] != pid or now - done[1] >= recheck:
                self.actuator.apply(name, pid)
                self._checked[name] = (pid, now)

    def viewers_of(self, camera: str) -> dict[str, dict[str, int]]:
        return {svc: v for (svc, cam), v in self.viewers.items() if cam == camera}
