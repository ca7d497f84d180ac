"""Viewer and camera priorities, shared by the services that serve viewers, the config that
gives cameras theirs, and the governor that sheds them.

A viewer says what it is with ``?priority=high|medium|low`` on its stream or signalling
URL; without it a viewer is ``medium`` (a person watching). ``high`` is for print
monitoring (Hydrogen's failure detection, the printer's own screen): it is never shed and
its camera is kept alive. ``low`` is for background work (timelapse grabbers, wall
dashboards): shed first, under memory pressure and in critical print phases.
"""

from __future__ import annotations

PRIORITIES = ("high", "medium", "low")  # lowest last: the order viewers are shed in reverse
DEFAULT_PRIORITY = "medium"
_RANK = {p: i for i, p in enumerate(reversed(PRIORITIES))}  # low 0, medium 1, high 2


def parse_priority(value: str | None) -> str:
    """A viewer's priority from its URL; ValueError names what is allowed."""
    if value is None or value == "":
        return DEFAULT_PRIORITY
    if value not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, not {value!r}")
    return value


def admitted(priority: str, min_priority: str) -> bool:
    """Whether a viewer of ``priority`` is served while ``min_priority`` and up are."""
    return _RANK.get(priority, 1) >= _RANK.get(min_priority, 0)
