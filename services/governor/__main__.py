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
from titanium.common.messages import CameraStatus, Heartbeat, ViewerCount
from titanium.common.rpc import serve
from titanium.common.service import Service, run_until_cancelled, service_config
from titanium.services.governor.actuate import Actuator, profiles
from titanium.services.governor.control import Control
from titanium.services.governor.core import Governor
from titanium.services.governor.probes import Probes

log = logging.getLogger("titanium.governor")
REPEAT_PERIOD = 1.0  # commands, admission and the heartbeat, for services that restarted
ACTUATE_RECHECK = 10.0  # seconds between read-backs of a service that checked out


def _private_dir(path: Path) -> None:
    """The control socket is as private as its directory: owner only."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 and path.stat().st_uid == os.geteuid():
        path.chmod(0o700)
        log.info("%s was mode %o: now 0700 (the control socket is owner-only)", path, mode)
    elif mode & 0o077:
        log.warning("%s is mode %o and not ours: others may reach the control socket", path, mode)


async def run(config: Config, service: Service) -> None:
    g = config.governor
    endpoints = Endpoints(config.runtime_dir)
    _private_dir(config.runtime_dir)
    ctx = zmq.asyncio.Context()
    pub = Publisher(ctx, endpoints.governor_pub(), private=True)
    rpc = ctx.socket(zmq.ROUTER)
    rpc.setsockopt(zmq.LINGER, 0)
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

    async def sample() -> None:
        # The load rule decides at the CPU's pace, everything else at sample_interval;
        # what the bus said, the repeats and the heartbeat go with the same wake-ups.
        period = min(g.cpu_interval, g.sample_interval)
        full_at = repeat_at = float("-inf")
        while True:
            for msg in sub.drain():
                gov.on_message(msg)
            now = gov.clock()
            if now - full_at >= g.sample_interval - period / 2:  # sleeps run late, not early
                full_at = now
                gov.sample()
                gov.actuate(ACTUATE_RECHECK)
            gov.sample_cpu()
            gov.decide()
            if now - repeat_at >= REPEAT_PERIOD - period / 2:
                repeat_at = now
                gov.repeat()
                gov.pids["governor"] = (os.getpid(), gov.clock())
                publish(Heartbeat("governor", os.getpid(), service.started, **bus.losses()))
            # Five wake-ups a second only while the load rule can act on them; otherwise
            # nothing changes between full samples. A print starting is seen at the next.
            await asyncio.sleep(period if gov.load_rule_live() else g.sample_interval)

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
    service.run_async(run(config, service))
    return 0


if __name__ == "__main__":
    sys.exit(main())
