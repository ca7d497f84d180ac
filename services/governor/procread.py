"""Reading a small /proc or sysfs file several times a second without the cost of opening
it each time: procfs and sysfs make a file's text anew on every read from offset 0, so one
descriptor kept open and read with ``pread`` serves every sample (what procps does for
top). Anything else (a test's recorded tree, rewritten in place or replaced) is opened per
read, since a kept descriptor would go on reading a replaced file."""

from __future__ import annotations

import os
from pathlib import Path

LIVE_ROOTS = ("/proc/", "/sys/")
MAX_BYTES = 1 << 16  # /proc/stat with many CPUs and interrupts stays well under this


class ProcFile:
    """One file read whole each time; :meth:`read` raises OSError like ``open`` would."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._keep = self.path.startswith(LIVE_ROOTS)
        self._fd: int | None = None

    def read(self) -> bytes:
        if not self._keep:
            with open(self.path, "rb") as f:
                return f.read()
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(self._fd, MAX_BYTES, 0)
        except OSError:
            self.close()  # its process ended (ESRCH), or the file went away: reopen next time
            raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()
