"""Find the V4L2 nodes that are cameras: to pick a default camera and for the CLI listing.

A single camera often brings several /dev/video* nodes (UVC adds a metadata node; the
Raspberry Pi has codec and ISP nodes at /dev/video10+ and, on the Pi 5, back-end nodes at
/dev/video20+), so "the first node" is not "the first camera". Nothing here raises: a node
that cannot be opened or queried is skipped.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from linuxpy.video.device import Capability, Device

log = logging.getLogger("titanium.discover")

BY_ID = Path("/dev/v4l/by-id")

# Memory-to-memory nodes (codecs, ISPs, scalers) also claim VIDEO_CAPTURE + STREAMING.
_M2M = Capability.VIDEO_M2M | Capability.VIDEO_M2M_MPLANE


def node_caps(device: Any) -> Capability:
    """The capabilities of the opened node itself, not of the whole driver."""
    info = device.info
    caps = Capability(info.capabilities)
    # device_caps is only filled in by drivers that set DEVICE_CAPS (all since Linux 3.x, but
    # old out-of-tree drivers still ship without it).
    return Capability(info.device_capabilities) if Capability.DEVICE_CAPS in caps else caps


def is_camera(caps: Capability) -> bool:
    """A node we can stream frames from directly."""
    wanted = Capability.VIDEO_CAPTURE | Capability.STREAMING
    return (caps & wanted) == wanted and not caps & _M2M


def _video_nodes(dev: Path = Path("/dev")) -> list[Path]:
    """/dev/videoN in numeric order (glob order puts video10 before video2)."""

    def number(path: Path) -> int:
        match = re.fullmatch(r"video(\d+)", path.name)
        return int(match.group(1)) if match else -1

    try:
        return sorted((p for p in dev.glob("video*") if number(p) >= 0), key=number)
    except OSError:
        return []


def _stable_names() -> dict[str, str]:
    """Real node path → its first /dev/v4l/by-id/ link, which survives re-plugging."""
    names: dict[str, str] = {}
    try:
        links = sorted(BY_ID.iterdir())
    except OSError:
        return names
    for link in links:
        try:
            names.setdefault(os.path.realpath(link), str(link))
        except OSError:
            continue
    return names


def _probe(node: Path) -> tuple[dict[str, str], bool] | None:
    """The node's card and driver, and whether it needs media-controller setup, when it is
    a camera; else None."""
    try:
        with Device(node, read_write=False) as device:
            caps = node_caps(device)
            if not is_camera(caps):
                return None
            info = {"card": device.info.card, "driver": device.info.driver}
            return info, Capability.IO_MC in caps
    except Exception as e:  # permissions, a vanished node, a driver linuxpy cannot parse
        log.debug("skipping %s: %s", node, e)
        return None


def _cameras() -> list[tuple[dict[str, str], bool]]:
    stable = _stable_names()
    cameras = []
    for node in _video_nodes():
        found = _probe(node)
        if found is None:
            continue
        info, media_controller = found
        path = stable.get(os.path.realpath(node), str(node))
        cameras.append(({"path": path, "node": str(node), **info}, media_controller))
    return cameras


def list_cameras() -> list[dict[str, str]]:
    """Every capture camera as {"path", "node", "card", "driver"}, in node order; ``path`` is
    the stable by-id link when there is one."""
    try:
        return [info for info, _ in _cameras()]
    except Exception as e:  # never let discovery take a caller down
        log.warning("camera discovery failed: %s", e)
        return []


def find_first_camera() -> str | None:
    """The path of the first camera, or None when there is none. Nodes driven through the
    media controller (Pi 5 front and back end, unicam) come last: they stream nothing useful
    without a pipeline set up by libcamera, yet report VIDEO_CAPTURE + STREAMING."""
    try:
        cameras = _cameras()
    except Exception as e:
        log.warning("camera discovery failed: %s", e)
        return None
    cameras.sort(key=lambda c: c[1])  # stable: keeps node order within each group
    return cameras[0][0]["path"] if cameras else None
