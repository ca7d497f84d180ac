"""``python -m titanium.services.governor``: print protection and the control socket."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from titanium.common.config import Config, ConfigError, load_config
from titanium.common.endpoints import Endpoints, ipc_path, unlink_ipc
from titanium.common.messages import (
    CameraStatus,
    Heartbeat,
    Message,
    MessageError,
    ViewerCount,
    decode,
    encode,
)
from titanium.common.rpc import serve
from titanium.common.service import Service
from titanium.services.governor.actuate import Actuator, profiles
from titanium.services.governor.control import Control
from titanium.services.governor.core import Governor
from titanium.services.governor.printer import MoonrakerPoller
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


def _bind_private(sock: zmq.Socket[Any], endpoint: str) -> None:
    """Bind an ipc socket whose file is owner-only from the moment it exists."""
    old = os.umask(0o077)
    try:
        sock.bind(endpoint)
    finally:
        os.umask(old)
    path = ipc_path(endpoint)
    if path is not None:
        path.chmod(0o600)


async def run(config: Config, service: Service) -> None:
    g = config.governor
    endpoints = Endpoints(config.runtime_dir)
    _private_dir(config.runtime_dir)
    ctx = zmq.asyncio.Context()
    pub = ctx.socket(zmq.PUB)
    rpc = ctx.socket(zmq.ROUTER)
    sub = ctx.socket(zmq.SUB)
    for sock in (pub, rpc, sub):
        sock.setsockopt(zmq.LINGER, 0)
    _bind_private(pub, endpoints.governor_pub())
    _bind_private(rpc, endpoints.governor_rpc())
    if g.control_tcp:
        rpc_tcp, pub_tcp = g.control_tcp.zmq(), g.control_tcp.zmq(1)
        rpc.bind(rpc_tcp)
        pub.bind(pub_tcp)
        log.warning("control socket also on %s (events on %s): no authentication", rpc_tcp, pub_tcp)
    for topic in (Heartbeat.TOPIC, CameraStatus.TOPIC, ViewerCount.TOPIC):
        sub.setsockopt(zmq.SUBSCRIBE, topic)
    for cam in config.cameras:
        sub.connect(endpoints.capture_pub(cam.id))
        sub.connect(endpoints.encoder_pub(cam.id))
    sub.connect(endpoints.webrtc_pub())
    sub.connect(endpoints.mjpeg_pub())

    def publish(msg: Message) -> None:
        try:
            pub.send_multipart(encode(msg), flags=zmq.NOBLOCK)
        except zmq.Again:
            pass

    available = os.sched_getaffinity(0)  # before the governor pins itself
    gov = Governor(config, Probes.from_config(g), Actuator(profiles(config, available)), publish)
    gov.pids["governor"] = (os.getpid(), gov.clock())
    poller = None
    if g.moonraker.url:
        poller = MoonrakerPoller(g.moonraker, lambda s: gov.printer.update(s, "moonraker"))

    def moonraker() -> dict[str, Any] | None:
        if poller is None:
            return None
        return {"url": g.moonraker.url, "error": poller.error, "polls": poller.polls}

    control = Control(gov, moonraker)

    async def sample() -> None:
        # The load rule decides at the CPU's pace, everything else at sample_interval.
        period = min(g.cpu_interval, g.sample_interval)
        full_at = float("-inf")
        while True:
            now = gov.clock()
            if now - full_at >= g.sample_interval - period / 2:  # sleeps run late, not early
                full_at = now
                gov.sample()
                gov.actuate(ACTUATE_RECHECK)
            gov.sample_cpu()
            gov.decide()
            await asyncio.sleep(period)

    async def repeat() -> None:
        while True:
            gov.repeat()
            gov.pids["governor"] = (os.getpid(), gov.clock())
            publish(Heartbeat("governor", os.getpid(), service.started))
            await asyncio.sleep(REPEAT_PERIOD)

    async def listen() -> None:
        while True:
            frames = await sub.recv_multipart()
            try:
                gov.on_message(decode(frames))
            except MessageError as e:
                log.warning("dropped a bad message: %s", e)

    tasks = [
        asyncio.ensure_future(c)
        for c in (sample(), repeat(), listen(), serve(rpc, control.handlers()))
    ]
    if poller is not None:
        tasks.append(asyncio.ensure_future(poller.run()))
    log.info(
        "print protection %s; control socket %s",
        "on" if gov.protect else "OFF",
        endpoints.governor_rpc(),
    )
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in (pub, rpc, sub):
            sock.close()
        ctx.term()
        unlink_ipc(endpoints.governor_pub())
        unlink_ipc(endpoints.governor_rpc())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="titanium.services.governor")
    parser.add_argument("--config", default=os.environ.get("TITANIUM_CONFIG"))
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"titanium governor: bad config: {e}", file=sys.stderr)
        return 2
    service = Service("governor")
    config.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    service.run_async(run(config, service))
    return 0


if __name__ == "__main__":
    sys.exit(main())
