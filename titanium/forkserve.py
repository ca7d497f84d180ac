"""supervisord as the services' fork server: a service starts as a fork of it, not an exec.

Every Python process starts at 15-17 MB of its own memory (the interpreter's objects and
what the standard library and zmq leave on import: docs/performance.md, "Where the megabytes
go"), six times over. Here supervisord imports what every service imports once, freezes it
out of the garbage collector's reach, and, where it would exec ``PYTHON -m
titanium.services.X ARGS``, runs that module in the forked child instead. The child shares
those pages with supervisord and every other service until it writes to them.

Everything else about a spawn stays supervisord's: the fork, the new process group, the
pipes on 0/1/2, fds 3 and up closed, the environment, the working directory; the service is
still supervisord's child with its own PID, exit status and restarts. Any other command
(and every command when ``TITANIUM_FORK`` is ``0``) is exec'd as before.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import importlib
import io
import os
import runpy
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import setproctitle

# Imported once, here: what every service's entry module imports (asyncio, zmq, msgpack, the
# config and message models), what one or two of them import (numpy and simplejpeg in
# capture and the front door; aiohttp there and in the Mirage link; PyAV and aiortc in the
# encoder and WebRTC), and the services' own modules, lazily imported ones included. A
# service started later shares the pages of what it uses and touches none of the rest; its
# entry module (``__main__``) runs afresh in the child.
PRELOAD = (
    "asyncio",
    "zmq.asyncio",
    "msgpack",
    "numpy",
    "simplejpeg",
    "aiohttp",
    "psutil",
    "av",
    "aiortc",
    "titanium.services.capture.__main__",
    "titanium.services.capture.testpattern",
    "titanium.services.capture.v4l2",
    "titanium.services.capture.filesource",
    "titanium.services.encoder.__main__",
    "titanium.services.encoder.pyav",
    "titanium.services.encoder.passthrough",
    "titanium.services.governor.__main__",
    "titanium.services.governor.moonraker",
    "titanium.services.mjpeg.__main__",
    "titanium.services.webrtc.__main__",
    "titanium.services.webrtc.proof",
    "titanium.services.mirage.__main__",
)
# The threads that numpy's OpenBLAS would start on import (one per extra core), which a
# fork would not carry: the same setting supervisord.conf gives every exec'd service.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
PREFIX = "titanium."
M_ARENA_MAX = -8  # glibc's mallopt parameter


def preload(modules: Sequence[str] = PRELOAD) -> list[str]:
    """Import what the services share, then move every object so far to the collector's
    permanent generation: a collection in a child would otherwise write to each of them
    (its GC header) and copy the page it sits on. Returns what could not be imported (a
    service that needs it fails in its own process, with its own error)."""
    # setproctitle finds the argv area on its first call; after a child's environment is
    # replaced it no longer could, and titles would stay supervisord's.
    setproctitle.setproctitle(setproctitle.getproctitle())
    for key, value in SINGLE_THREADED.items():
        os.environ.setdefault(key, value)
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # any failure is the service's to report, in its own process
            missing.append(name)
        if name.endswith(".__main__"):
            # Its code runs again as __main__ in the child; left here, runpy would warn.
            sys.modules.pop(name, None)
    gc.collect()
    gc.freeze()
    return missing


def limit_arenas(count: int) -> None:
    """What MALLOC_ARENA_MAX does for an exec'd service; a fork inherits its allocator
    from supervisord, which glibc set up before any environment of the services applied."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_ARENA_MAX, count)
    except (OSError, AttributeError):
        pass


def _module_of(python: str, filename: str, argv: Sequence[str]) -> str | None:
    """``titanium.services.X`` when ``argv`` is ``PYTHON -m titanium.services.X ...``."""
    if filename != python or len(argv) < 3 or argv[1] != "-m":
        return None
    return argv[2] if argv[2].startswith(PREFIX) else None


def _fresh_stdio() -> None:
    """Text streams on fds 1 and 2 as they are now (supervisord's pipes), with none of
    supervisord's buffered output in them."""
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), line_buffering=True, write_through=True
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), line_buffering=True, write_through=True
    )


def _shutdown() -> None:
    """What an interpreter does on exit that a service may rely on: join its non-daemon
    threads, run its atexit functions, flush its output. (Not the objects' finalizers:
    the process ends with ``os._exit``, inside supervisord's spawn.)"""
    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except Exception:
        traceback.print_exc()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def run_service(module: str, argv: Sequence[str], env: dict[str, str]) -> None:
    """In a freshly forked child: become ``python -m module argv[3:]`` and exit with its
    status. Never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                    signal.SIGCHLD, signal.SIGUSR2):  # fmt: skip
            signal.signal(sig, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(env)
        _fresh_stdio()
        setproctitle.setproctitle(" ".join(argv))
        sys.argv = [module, *argv[3:]]
        atexit._clear()  # supervisord's, if any: a fresh interpreter has none
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        if stop.code is None:
            code = 0
        elif isinstance(stop.code, int):
            code = stop.code
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        _shutdown()
        os._exit(code)


def install(python: str) -> None:
    """Make supervisord's spawns of ``python -m titanium.…`` run in the fork (its
    ServerOptions.execve is what a spawned child calls last)."""
    from supervisor.options import ServerOptions

    execve: Callable[[Any, str, list[str], dict[str, str]], None] = ServerOptions.execve

    def spawn(self: Any, filename: str, argv: list[str], env: dict[str, str]) -> None:
        module = _module_of(python, filename, argv)
        if module is None:
            execve(self, filename, argv, env)
        else:
            run_service(module, argv, env)

    ServerOptions.execve = spawn
