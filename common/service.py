"""What every Titanium service does at start: process title, faulthandler, logging to
stdout (supervisord collects it), SIGTERM/SIGINT → an orderly stop, and the CPU pinning and
real-time helpers that log clearly and carry on where the system refuses them."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import faulthandler
import inspect
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from titanium.common.config import CameraConfig, Config, ConfigError, load_config

log = logging.getLogger("titanium")


class Service:
    """Bootstrap for one service process; ``stopping`` is set on SIGTERM or SIGINT."""

    def __init__(self, name: str, level: str | None = None) -> None:
        self.name = name
        self.started = time.time()
        self.stopping = threading.Event()
        self._on_stop: list[Callable[[], None]] = []
        faulthandler.enable()
        try:
            import setproctitle

            setproctitle.setproctitle(f"titanium-{name}")
        except ImportError:  # pragma: no cover - a declared dependency
            pass
        logging.basicConfig(
            stream=sys.stdout,
            level=level or os.environ.get("TITANIUM_LOG_LEVEL", "INFO"),
            format=f"%(asctime)s {name}[%(process)d] %(levelname)s %(name)s: %(message)s",
            force=True,
        )
        # linuxpy logs every device open/close at INFO: noise while a camera is retried.
        logging.getLogger("linuxpy").setLevel(logging.WARNING)
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)

    def on_stop(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` (from the signal handler's thread) when a stop is requested."""
        self._on_stop.append(fn)

    def _signal(self, signum: int, _frame: object) -> None:
        log.info("%s: stopping on %s", self.name, signal.Signals(signum).name)
        self.stopping.set()
        for fn in self._on_stop:
            fn()

    def run_async(self, main: Coroutine[Any, Any, None], lag_warn: float | None = 0.25) -> None:
        """Run an asyncio service until it returns or a stop is requested.

        A watchdog logs when the loop was blocked for more than ``lag_warn`` seconds: a
        blocked loop stalls every viewer of the process. ``lag_warn=None``: the service
        watches its loop itself, with a timer it has anyway (the governor's sample loop),
        sparing the watchdog's two wake-ups a second.
        """

        async def runner() -> None:
            loop = asyncio.get_running_loop()
            task = asyncio.ensure_future(main)
            stop = asyncio.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            watchdog = asyncio.ensure_future(
                _watch_lag(lag_warn) if lag_warn is not None else asyncio.Event().wait()
            )
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                log.info("%s: stopping", self.name)
                self.stopping.set()
            for t in (task, watchdog, stopper):
                t.cancel()
            await asyncio.gather(task, watchdog, stopper, return_exceptions=True)
            if task.done() and not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]

        asyncio.run(runner())


async def _watch_lag(limit: float, period: float = 0.5) -> None:
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(period)
        lag = loop.time() - before - period
        if lag > limit:
            log.warning("event loop was blocked for %.0f ms", lag * 1000)


def pin_cpus(cpus: Iterable[int]) -> bool:
    """Pin this process to ``cpus``; log and carry on where that is impossible."""
    wanted = set(cpus)
    available = os.sched_getaffinity(0)
    usable = wanted & available
    if not usable:
        log.warning(
            "cannot pin to CPUs %s: this process may only use %s; not pinned",
            sorted(wanted),
            sorted(available),
        )
        return False
    try:
        os.sched_setaffinity(0, usable)
    except OSError as e:
        log.warning("cannot pin to CPUs %s: %s; not pinned", sorted(usable), e.strerror)
        return False
    log.info("pinned to CPUs %s", sorted(os.sched_getaffinity(0)))
    return True


def set_realtime(priority: int) -> bool:
    """SCHED_FIFO at ``priority`` (1–99); where refused (no CAP_SYS_NICE, RLIMIT_RTPRIO,
    a container), log how to allow it and carry on at normal priority."""
    if priority <= 0:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as e:
        log.warning(
            "real-time scheduling (SCHED_FIFO %d) refused: %s; capture runs at normal "
            "priority. Allow it with CAP_SYS_NICE or 'ulimit -r %d'.",
            priority,
            e.strerror,
            priority,
        )
        return False
    log.info("real-time scheduling: SCHED_FIFO priority %d", priority)
    return True


def release_free_memory() -> None:
    """Hand memory freed after a large one-off computation back to the system: glibc keeps
    it in the heap otherwise, and it would count against the process for its whole life."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _arguments(name: str, per_camera: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"titanium.services.{name}")
    parser.add_argument("--config", default=os.environ.get("TITANIUM_CONFIG"))
    if per_camera:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--camera", help="camera id")
        which.add_argument("--camera-index", type=int, default=0, help="position in the config")
    return parser


def _load(name: str, path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as e:
        print(f"titanium {name}: bad config: {e}", file=sys.stderr)
        sys.exit(2)


def service_config(name: str, argv: list[str] | None) -> Config:
    """The config of a service, from ``--config`` (default $TITANIUM_CONFIG). A bad config
    exits 2 with the reason."""
    return _load(name, _arguments(name, False).parse_args(argv).config)


def camera_service_args(name: str, argv: list[str] | None) -> tuple[Config, CameraConfig]:
    """The config and the camera of a per-camera service (capture, encoder), from
    ``--config`` and ``--camera ID`` or ``--camera-index N`` (as supervisord's numprocs
    gives it). A bad config or camera exits 2 with the reason."""
    args = _arguments(name, True).parse_args(argv)
    config = _load(name, args.config)
    try:
        camera = config.camera(args.camera) if args.camera else config.cameras[args.camera_index]
    except (KeyError, IndexError):
        print(f"titanium {name}: no such camera in {config.source}", file=sys.stderr)
        sys.exit(2)
    return config, camera


Closer = Callable[[], object]  # may return an awaitable, which is awaited


async def run_until_cancelled(tasks: Iterable[Awaitable[Any]], closers: Iterable[Closer]) -> None:
    """An asyncio service's body: run ``tasks`` until one of them ends (an error) or the
    service is cancelled (a stop), then cancel and await every task and call each closer
    in order (end sessions, close sockets, terminate the context), however it ended."""
    running = [asyncio.ensure_future(t) for t in tasks]
    try:
        await asyncio.gather(*running)
    finally:
        for t in running:
            t.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for close in closers:
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one failing closer must not leave the rest undone
                log.exception("while stopping")
