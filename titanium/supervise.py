"""supervisord as ``titaniumctl up`` becomes once it has prepared everything.

``up`` execs ``python -m titanium.supervise`` (same PID: the terminal's Ctrl-C and a
SIGTERM reach supervisord itself, and the services are its children), so no second Python
process stays resident only to wait. This module runs supervisord in-process with three
additions that ``up`` used to make from outside:

- a thread that waits for every service to run, prints the camera lines and the URL once,
  and ends;
- a wakeup pipe in supervisord's poll loop, so a signal (SIGTERM, SIGINT, SIGCHLD) is
  handled at once: supervisord otherwise notices a stop and each exited service only at its
  next one-second poll timeout, since Python retries the interrupted poll (PEP 475);
- once supervisord returns, removal of the resolved config and of anything stopped
  services left, then exit 0 as ``up`` did.

Everything it needs comes from ``up`` in the environment (see :func:`titanium.up.run_up`).
Before supervisord starts, it imports what the services use and becomes their fork server
(titanium/forkserve.py): a service is a fork of this process that shares those pages, not
a fresh interpreter; ``TITANIUM_FORK=0`` execs each as before.
"""

from __future__ import annotations

import fcntl
import glob
import http.client
import json
import os
import signal
import stat
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

READY_TIMEOUT = 30.0

# supervisord's warnings about running as root and its owner-only (chmod 0700) control
# socket, which are expected here and alarm nobody who can act on them.
QUIET = ("Supervisor is running as root", "running without any HTTP authentication")


def _status(url: str) -> dict[str, Any] | None:
    # http.client, not urllib.request: supervisord has imported it already, urllib.request
    # would add its own modules to this process for good.
    where = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=1)
    try:
        conn.request("GET", where.path)
        r = conn.getresponse()
        if r.status != 200:
            return None
        doc: dict[str, Any] = json.loads(r.read())
        return doc
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _announce(status_url: str, urls: str) -> None:
    """Print the camera lines and the URL once every service runs (or say it did not)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        doc = _status(status_url)
        services = (doc or {}).get("services") or {}
        if doc and services and all(s["state"] == "running" for s in services.values()):
            lines = [
                f"camera {cam_id}: {cam['device']} {cam['width']}x{cam['height']} "
                f"@ {cam['fps_configured']} fps"
                for cam_id, cam in doc["cameras"].items()
            ]
            lines.append(f"Titanium is streaming. Open {urls}")
            sys.stdout.write("".join(line + "\n" for line in lines))
            sys.stdout.flush()
            return
        time.sleep(0.2)
    sys.stderr.write(
        f"titaniumctl: services did not come up within {READY_TIMEOUT:.0f} s; see the log above\n"
    )


class _Wakeup:
    """An entry in supervisord's dispatcher map (medusa's asyncore socket_map) for the read
    end of the signal wakeup pipe: readable, so every poll includes it; reading drains it."""

    def __init__(self) -> None:
        self.fd, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        try:
            while os.read(self.fd, 512):
                pass
        except BlockingIOError:
            pass

    def handle_error(self) -> None:
        pass


def _quiet_stdout() -> None:
    """Drop supervisord's expected warnings from its stdout log (its file log is /dev/null)."""
    from supervisor import loggers

    original = loggers.StreamHandler.emit

    def emit(self: Any, record: Any) -> None:
        if not any(q in str(record.msg) for q in QUIET):
            original(self, record)

    loggers.StreamHandler.emit = emit


def _clean(runtime_dir: Path, shm_glob: str) -> list[str]:
    """What stopped services left (a clean stop leaves nothing): removed, and listed."""
    left = sorted(glob.glob(shm_glob))
    left += [str(p) for pattern in ("*.pub", "*.rpc", "*.sock") for p in runtime_dir.glob(pattern)]
    for path in left:
        Path(path).unlink(missing_ok=True)
    return left


def _append_to_files() -> None:
    """Services write to /dev/stdout opened afresh (O_APPEND) by supervisord; when our own
    stdout is a regular file, its own offset would overwrite their lines: append too."""
    for fd in (1, 2):
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        except OSError:
            pass  # closed or not ours to change: nothing to protect


def main() -> int:
    from supervisor import supervisord
    from supervisor.medusa import asyncore_25 as asyncore

    env = os.environ
    runtime_dir = Path(env["TITANIUM_RUNTIME_DIR"])
    if env.get("TITANIUM_FORK", "1") != "0":
        from titanium import forkserve

        forkserve.limit_arenas(2)
        missing = forkserve.preload()
        if missing:  # the service that needs one will fail with its own error
            sys.stderr.write(f"titaniumctl: could not preload {', '.join(missing)}\n")
        forkserve.install(env["TITANIUM_PYTHON"])
    _append_to_files()
    wakeup = _Wakeup()
    asyncore.socket_map[wakeup.fd] = wakeup
    _quiet_stdout()
    threading.Thread(
        target=_announce,
        args=(env.pop("TITANIUM_STATUS_URL"), env.pop("TITANIUM_URLS")),
        name="announce",
        daemon=True,
    ).start()
    shm_glob = env.pop("TITANIUM_SHM_GLOB")
    try:
        supervisord.main(sys.argv[1:])
    finally:
        left = _clean(runtime_dir, shm_glob)
        Path(env["TITANIUM_CONFIG"]).unlink(missing_ok=True)
        if left:
            sys.stderr.write(
                f"titaniumctl: removed what stopped services left: {', '.join(left)}\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
