"""The calling thread inside a named network namespace (``ip netns add NAME``).

A socket belongs to the namespace it was created in, whatever thread later uses it, so a
test can open sockets "inside" a namespace for a moment and keep using them outside::

    with inside("ti-viewer-123"):
        s = socket.create_connection(("100.64.7.100", 80))
    s.sendall(b"...")  # still the viewer's connection

setns(2) with CLONE_NEWNET changes only the calling thread, so other threads (the pytest main
thread, other servers) are never moved. Needs root (CAP_SYS_ADMIN).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def enter(name: str) -> None:
    """Move the calling thread into namespace ``name`` for good (a thread's first call)."""
    fd = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def inside(name: str) -> Iterator[None]:
    """The calling thread in namespace ``name`` for the block, then back where it was."""
    # thread-self, not self: /proc/self is the main thread's view.
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        enter(name)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)
