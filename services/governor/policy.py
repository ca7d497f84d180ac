"""How much video the board can afford: a pure function of the readings, the printer's
state, the clock and the previous state, so every rule is tested without a board.

Rules, in the order they bind (docs/governor.md has the full story):

- Hard limits push a camera down at once: a manual pause; heat (the hottest sensor at
  ``temp_limit`` until it is below ``temp_resume``) or the Pi's throttling flags → paused
  (a high-priority camera stays on its lowest rung instead: it is the print monitor); the
  memory reserve breached → the lowest rung; the first layer → ``first_layer_quality``.
  Low-priority cameras are paused in every critical phase (heat, throttling, first layer,
  memory emergency).
- Load steps down one rung per ``step_down_after`` seconds while printing with CPU above
  ``cpu_high`` (or memory below ``memory_low_mb``), down to the lowest rung (low priority:
  to paused).
- Up, one rung at a time, only after the board has been calm (CPU under ``cpu_low`` or not
  printing, no heat, no throttling, memory fine) for ``calm_time`` and the camera's last
  change is as old: the gap between ``cpu_low`` and ``cpu_high`` is the hysteresis.
- Viewers: memory below ``memory_low_mb`` or any critical phase sheds low-priority viewers;
  the reserve breached sheds medium ones too. High-priority viewers are never shed.
- ``quality.set`` makes a rung the best a camera may have; ``print_protection: false``
  keeps every camera there (or on top) whatever the board says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from titanium.common.govconfig import GovernorConfig
from titanium.services.governor.ladder import Ladder, Rung

NEVER = float("-inf")


@dataclass(frozen=True)
class Readings:
    """One sample of the board; None where the board has no such sensor."""

    cpu: float | None = None  # % of all CPUs busy over sample_interval
    cpu_short: float | None = None  # the same over cpu_interval (the load rule); None: cpu
    mem_available_mb: float | None = None
    titanium_pss_mb: float | None = None
    temp_c: float | None = None  # the hottest sensor
    temp_sensor: str = ""
    throttled_now: tuple[str, ...] = ()  # the Pi's current throttling flags


@dataclass(frozen=True)
class PrinterState:
    state: str = "unknown"  # 'printing', 'paused', 'idle', 'unknown'
    first_layer: bool = False
    layer: int | None = None
    progress: float | None = None  # 0..1
    source: str = ""  # 'hydrogen', 'moonraker'

    @property
    def printing(self) -> bool:
        return self.state == "printing"


@dataclass(frozen=True)
class CameraPolicy:
    """What the policy knows of a camera: fixed for the life of the governor."""

    id: str
    priority: str  # 'high', 'medium', 'low'
    ladder: Ladder


@dataclass(frozen=True)
class CameraState:
    index: int = 0  # the rung now (0 = the camera's configured quality)
    changed_at: float = NEVER
    reason: str = "configured quality"
    manual_best: int | None = None  # quality.set
    manual_pause: str = ""  # who paused it, '' = not paused by hand


@dataclass(frozen=True)
class State:
    cameras: Mapping[str, CameraState] = field(default_factory=dict)
    heat: bool = False  # latched between temp_limit and temp_resume
    pressure_since: float | None = None  # CPU (while printing) or memory over its limit
    last_load_step: float = NEVER
    calm_since: float | None = None


@dataclass(frozen=True)
class CameraDecision:
    index: int
    rung: Rung
    reason: str  # why it is on this rung (the last change's cause)
    limits: tuple[str, ...]  # what holds it below its best now


@dataclass(frozen=True)
class Decision:
    cameras: dict[str, CameraDecision]
    admission: str  # lowest viewer priority served
    admission_reason: str
    conditions: tuple[str, ...]  # the board's state in words, for /status
    state: State


@dataclass(frozen=True)
class _Board:
    """The sample judged once for every camera."""

    heat: bool
    heat_why: str
    throttled: str
    mem_emergency: str
    mem_low: str
    first_layer: bool
    load_step: str  # why every camera steps down now, '' = no step
    calm: bool


def _board(
    r: Readings, printer: PrinterState, now: float, state: State, g: GovernorConfig
) -> tuple[_Board, State]:
    # Latched between the two limits, so a sensor hovering at the limit does not flap; a
    # sensor that went away (None) says nothing is hot.
    t = r.temp_c
    heat = t is not None and (t >= g.temp_limit or (state.heat and t >= g.temp_resume))
    heat_why = ""
    if heat and t is not None:
        heat_why = (
            f"heat: {r.temp_sensor} {t:.1f} °C ≥ {g.temp_limit:g} °C"
            if t >= g.temp_limit
            else f"heat: {r.temp_sensor} {t:.1f} °C, not yet below {g.temp_resume:g} °C"
        )
    throttled = f"throttled: {', '.join(r.throttled_now)}" if r.throttled_now else ""
    avail = r.mem_available_mb
    mem_emergency = mem_low = ""
    if avail is not None and avail < g.memory_reserve_mb:
        mem_emergency = f"memory: {avail:.0f} MB free < {g.memory_reserve_mb} MB reserve"
    if avail is not None and avail < g.memory_low_mb:
        mem_low = f"memory: {avail:.0f} MB free < {g.memory_low_mb} MB"
    pss = r.titanium_pss_mb
    if g.titanium_memory_mb and pss is not None and pss > g.titanium_memory_mb:
        mem_low = f"memory: Titanium uses {pss:.0f} MB > {g.titanium_memory_mb} MB"
    # Load reads short windows, so that a sustained overload is seen within one (and the
    # hold alone decides how long is too long); calm reads the long ones, so a short
    # burst on a calm board does not restart its calm_time.
    load_cpu = r.cpu_short if r.cpu_short is not None else r.cpu
    cpu_hot = printer.printing and load_cpu is not None and load_cpu > g.cpu_high
    cpu_calm = not printer.printing or r.cpu is None or r.cpu < g.cpu_low
    pressure = cpu_hot or bool(mem_low)
    since = (
        (state.pressure_since if state.pressure_since is not None else now) if pressure else None
    )
    load_step = ""
    if (
        since is not None
        and now - since >= g.step_down_after
        and now - state.last_load_step >= g.step_down_after
    ):
        load_step = mem_low or f"cpu {load_cpu:.1f} % > {g.cpu_high} % while printing"
    calm = cpu_calm and not heat and not throttled and not mem_low
    calm_since = (state.calm_since if state.calm_since is not None else now) if calm else None
    board = _Board(
        heat,
        heat_why,
        throttled,
        mem_emergency,
        mem_low,
        printer.printing and printer.first_layer,
        load_step,
        calm and calm_since is not None and now - calm_since >= g.calm_time,
    )
    state = dataclasses.replace(
        state,
        heat=heat,
        pressure_since=since,
        last_load_step=now if load_step else state.last_load_step,
        calm_since=calm_since,
    )
    return board, state


def _limits(
    cam: CameraPolicy, cs: CameraState, b: _Board, g: GovernorConfig
) -> list[tuple[int, str]]:
    """(worst rung allowed, why) for each hard limit on this camera now."""
    ladder = cam.ladder
    high, low = cam.priority == "high", cam.priority == "low"
    out: list[tuple[int, str]] = []
    if cs.manual_pause:
        out.append((ladder.paused, f"paused by {cs.manual_pause}"))
    for why in (b.heat_why, b.throttled):
        if why:
            out.append((ladder.lowest_live if high else ladder.paused, why))
    if b.mem_emergency:
        out.append((ladder.paused if low else ladder.lowest_live, b.mem_emergency))
    if b.first_layer:
        out.append((ladder.paused if low else ladder.floor(g.first_layer_quality), "first layer"))
    if cs.manual_best is not None:
        out.append((cs.manual_best, f"set to {ladder.rungs[cs.manual_best].label} by hand"))
    return out


def _camera(
    cam: CameraPolicy, cs: CameraState, b: _Board, now: float, g: GovernorConfig, protect: bool
) -> tuple[CameraDecision, CameraState]:
    ladder = cam.ladder
    best = cs.manual_best or 0
    if not protect:
        limits = [(ladder.paused, f"paused by {cs.manual_pause}")] if cs.manual_pause else []
        index, reason = (limits[0][0], limits[0][1]) if limits else (best, "print protection off")
    else:
        limits = _limits(cam, cs, b, g)
        floor = max((i for i, _ in limits), default=0)
        bottom = ladder.paused if cam.priority == "low" else ladder.lowest_live
        index, reason = cs.index, cs.reason
        if floor > index:
            index, reason = floor, next(why for i, why in limits if i == floor)
        elif b.load_step and index < bottom:
            index, reason = index + 1, b.load_step
        elif index > max(floor, best) and b.calm and now - cs.changed_at >= g.calm_time:
            index, reason = index - 1, f"calm for {g.calm_time:g} s"
        if index < best:
            index, reason = best, f"set to {ladder.rungs[best].label} by hand"
    changed = index != cs.index
    new = dataclasses.replace(
        cs, index=index, reason=reason, changed_at=now if changed else cs.changed_at
    )
    holding = tuple(why for i, why in limits if i > 0 and i >= index)
    return CameraDecision(index, ladder.rungs[index], reason, holding), new


def _admission(b: _Board, protect: bool) -> tuple[str, str]:
    if not protect:
        return "low", "print protection off"
    if b.mem_emergency:
        return "high", b.mem_emergency
    critical = b.mem_low or b.heat_why or b.throttled or ("first layer" if b.first_layer else "")
    if critical:
        return "medium", critical
    return "low", "every viewer is served"


def decide(
    readings: Readings,
    printer: PrinterState,
    now: float,
    state: State,
    cameras: Sequence[CameraPolicy],
    g: GovernorConfig,
    protect: bool = True,
) -> Decision:
    """The rung of every camera and the viewers served, with the reasons, and the state
    to pass to the next call. ``now`` is a monotonic clock in seconds."""
    board, next_state = _board(readings, printer, now, state, g)
    out: dict[str, CameraDecision] = {}
    cam_states: dict[str, CameraState] = {}
    for cam in cameras:
        out[cam.id], cam_states[cam.id] = _camera(
            cam, state.cameras.get(cam.id, CameraState()), board, now, g, protect
        )
    admission, why = _admission(board, protect)
    conditions = tuple(
        c
        for c in (
            f"printer {printer.state}" + (" (first layer)" if board.first_layer else ""),
            board.heat_why,
            board.throttled,
            board.mem_low or board.mem_emergency,
            "calm" if board.calm else "",
        )
        if c
    )
    next_state = dataclasses.replace(next_state, cameras=cam_states)
    return Decision(out, admission, why, conditions, next_state)


# -- what the control socket changes -------------------------------------------------------


def _update(state: State, camera: str, **changes: Any) -> State:
    cams = dict(state.cameras)
    cams[camera] = dataclasses.replace(cams.get(camera, CameraState()), **changes)
    return dataclasses.replace(state, cameras=cams)


def pause(state: State, camera: str, who: str) -> State:
    return _update(state, camera, manual_pause=who or "hand")


def resume(state: State, camera: str) -> State:
    """Clear a manual pause and go straight back to the best allowed rung: someone asked
    for the picture; the limits still hold on the next decision."""
    best = state.cameras.get(camera, CameraState()).manual_best or 0
    return _update(state, camera, manual_pause="", index=best, reason="resumed by hand")


def set_best(state: State, camera: str, index: int | None) -> State:
    """``quality.set`` (an index) or ``quality.auto`` (None)."""
    if index is None:
        return _update(state, camera, manual_best=None, reason="automatic quality")
    return _update(state, camera, manual_best=index, index=index, reason="set by hand")
