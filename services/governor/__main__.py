"""``python -m titanium.services.governor``: print protection and the control socket."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from titanium.common import bus
from titanium.common.bus import Publisher, Subscriber
from titanium.common.config import Config
from titanium.common.endpoints import Endpoints, bind_private, unlink_ipc
from titanium.common.messages import CameraStatus, Heartbeat, ViewerCount, encode
from titanium.common.rpc import serve, server_socket
from titanium.common.service import Service, run_until_cancelled, service_config
from titanium.services.governor import settings
from titanium.services.governor.actuate import Actuator, profiles
from titanium.services.governor.control import Control
from titanium.services.governor.core import Governor
from titanium.services.governor.probes import Probes

log = logging.getLogger("titanium.governor")
HEARTBEAT_PERIOD = 1.0  # the front door's /status counts a service silent after 3 s
# Commands and admission again, for a service that restarted without being seen to (a new
# PID in a heartbeat repeats them at once).
REPEAT_PERIOD = 10.0
LAG_WARN = 0.25  # seconds late a wake-up may be before the loop counts as blocked
ACTUATE_RECHECK = 10.0  # seconds between read-backs of a service that checked out
# The same with no print running: a new PID is still actuated at once, and a print starting
# brings the 10 s back at its next sample.
ACTUATE_RECHECK_IDLE = 30.0


def _private_dir(path: Path) -> None:
    """The control socket is as private as its directory: owner only."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 and path.stat().st_uid == os.geteuid():
        path.chmod(0o700)
        log.info("%s was mode %o: now 0700 (the control socket is owner-only)", path, mode)
    elif mode & 0o077:
        log.warning("%s is mode %o and not ours: others may reach the control socket", path, mode)


class _Beat:
    """The governor's heartbeat, encoded again only when its loss counts change: encoding
    a message costs more than sending it, and this one is the same second after second."""

    def __init__(self, pid: int, started: float) -> None:
        self.pid, self.started = pid, started
        self._last: tuple[dict[str, int], list[bytes]] | None = None

    def frames(self, losses: dict[str, int]) -> list[bytes]:
        if self._last is None or self._last[0] != losses:
            self._last = losses, encode(Heartbeat("governor", self.pid, self.started, **losses))
        return self._last[1]


async def run(config: Config, service: Service) -> None:
    g = config.governor
    endpoints = Endpoints(config.runtime_dir)
    _private_dir(config.runtime_dir)
    ctx = zmq.asyncio.Context()
    pub = Publisher(ctx, endpoints.governor_pub(), private=True)
    rpc = server_socket(ctx)
    bind_private(rpc, endpoints.governor_rpc())
    if g.control_tcp:
        rpc_tcp, pub_tcp = g.control_tcp.zmq(), g.control_tcp.zmq(1)
        rpc.bind(rpc_tcp)
        pub.also_bind(pub_tcp)
        log.warning("control socket also on %s (events on %s): no authentication", rpc_tcp, pub_tcp)
    heard = [endpoints.webrtc_pub(), endpoints.mjpeg_pub()]
    for cam in config.cameras:
        heard += [endpoints.capture_pub(cam.id), endpoints.encoder_pub(cam.id)]
    # A plain socket, read in the sample loop: heartbeats, camera status and viewer
    # counts (several a second) wait in its queue instead of each waking the event loop.
    plain: zmq.Context[Any] = zmq.Context.shadow(ctx.underlying)
    sub = Subscriber(plain, heard, (Heartbeat, CameraStatus, ViewerCount))
    publish = pub.publish

    available = os.sched_getaffinity(0)  # before the governor pins itself
    gov = Governor(config, Probes.from_config(g), Actuator(profiles(config, available)), publish)
    gov.state = settings.load_into(gov.state, settings.Settings(config.state_dir), gov.ladders)
    gov.pids["governor"] = (os.getpid(), gov.clock())
    poller = None
    if g.moonraker.url:
        from titanium.services.governor.moonraker import MoonrakerPoller

        poller = MoonrakerPoller(g.moonraker, lambda s: gov.printer.update(s, "moonraker"))

    def moonraker() -> dict[str, Any] | None:
        if poller is None:
            return None
        return {"url": g.moonraker.url, "error": poller.error, "polls": poller.polls}

    control = Control(gov, moonraker)
    beat = _Beat(os.getpid(), service.started)

    async def sample() -> None:
        # The load rule decides at the CPU's pace, everything else at sample_interval;
        # what the bus said, the repeats and the heartbeat go with the same wake-ups.
        period = min(g.cpu_interval, g.sample_interval)
        loop = asyncio.get_running_loop()
        full_at = repeat_at = beat_at = float("-inf")
        while True:
            for msg in sub.drain():
                gov.on_message(msg)
            now = gov.clock()
            if now - full_at >= g.sample_interval - period / 2:  # sleeps run late, not early
                full_at = now
                gov.sample()
                printing = gov.printer.current().printing
                gov.actuate(ACTUATE_RECHECK if printing else ACTUATE_RECHECK_IDLE)
            gov.sample_cpu()
            gov.decide()
            if gov.restarted or now - repeat_at >= REPEAT_PERIOD - period / 2:
                repeat_at = now
                gov.repeat()
            if now - beat_at >= HEARTBEAT_PERIOD - period / 2:
                beat_at = now
                gov.pids["governor"] = (os.getpid(), gov.clock())
                pub.send(beat.frames(bus.losses()))
            # Five wake-ups a second only while the load rule can act on them; otherwise
            # nothing changes between full samples. A print starting is seen at the next.
            delay = period if gov.load_rule_live() else g.sample_interval
            before = loop.time()
            await asyncio.sleep(delay)
            # This loop is the event loop's watchdog too (run_async's own would wake the
            # process twice a second more, each wake-up about 0.2 ms here): a blocked loop
            # wakes it late.
            lag = loop.time() - before - delay
            if lag > LAG_WARN:
                log.warning("event loop was blocked for %.0f ms", lag * 1000)

    log.info(
        "print protection %s; control socket %s",
        "on" if gov.protect else "OFF",
        endpoints.governor_rpc(),
    )
    await run_until_cancelled(
        [sample(), serve(rpc, control.handlers())] + ([poller.run()] if poller is not None else []),
        [pub.close, rpc.close, sub.close, ctx.term, lambda: unlink_ipc(endpoints.governor_rpc())],
    )


def main(argv: list[str] | None = None) -> int:
    config = service_config("governor", argv)
    service = Service("governor")
    config.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    service.run_async(run(config, service), lag_warn=None)  # the sample loop watches it
    return 0


if __name__ == "__main__":
    sys.exit(main())
