"""The environment supervisord gives every service (deploy/supervisord.conf), seen in the
services' own memory maps: setproctitle reuses the environ area, so /proc/PID/environ
no longer shows it."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.integration.conftest import Stack
from tests.integration.mjpeg_client import Drain, MjpegClient

ARENA = 64 << 20  # glibc reserves each non-main malloc arena as one aligned 64 MiB heap
MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(\S*)$")


def malloc_arenas(pid: int) -> int:
    """glibc's non-main arenas in ``pid``: anonymous 64 MiB-aligned rw-p mappings that, with
    the PROT_NONE rest of their reservation right after, span 64 MiB."""
    maps = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        m = MAPPING.match(line)
        if m:
            maps.append((int(m[1], 16), int(m[2], 16), m[3], m[4]))
    count = 0
    for (start, end, perms, path), nxt in zip(maps, [*maps[1:], None], strict=True):
        if path or perms != "rw-p" or start % ARENA:
            continue
        if nxt and not nxt[3] and nxt[2] == "---p" and nxt[0] == end:
            end = nxt[1]
        count += end - start == ARENA
    return count


def test_services_use_at_most_two_malloc_arenas(stack: Stack) -> None:
    """Pins: services ran with glibc's default of 8 malloc arenas per core; with one MJPEG
    viewer the front door's threads had made 3-4 beside the main one (3.8 MB of PSS).
    MALLOC_ARENA_MAX=2 in supervisord's environment allows one beside the main arena."""
    viewer = Drain(MjpegClient(stack.port))
    try:
        time.sleep(4)  # the JPEG worker, the executor and zmq's threads all allocate
        assert viewer.bytes > 0
        arenas = {
            name: malloc_arenas(svc["pid"]) for name, svc in stack.status()["services"].items()
        }
    finally:
        viewer.client.close()
    assert max(arenas.values()) <= 1, arenas
