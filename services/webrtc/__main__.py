"""``python -m titanium.services.webrtc``: WebRTC viewers for every camera, signalled
through the HTTP front door over ZeroMQ."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

import zmq
import zmq.asyncio

from titanium.common.config import Config, ConfigError, load_config
from titanium.common.endpoints import Endpoints, unlink_ipc
from titanium.common.messages import (
    Heartbeat,
    Message,
    MessageError,
    ViewerAdmission,
    decode_as,
    encode,
)
from titanium.common.rpc import serve
from titanium.common.service import Service
from titanium.services.webrtc import proof
from titanium.services.webrtc.feed import EncodedFeed
from titanium.services.webrtc.ice import gather_on
from titanium.services.webrtc.manager import SessionManager

log = logging.getLogger("titanium.webrtc")


async def run(config: Config, service: Service) -> None:
    endpoints = Endpoints(config.runtime_dir)
    ctx = zmq.asyncio.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoints.webrtc_pub())
    rpc = ctx.socket(zmq.ROUTER)
    rpc.setsockopt(zmq.LINGER, 0)
    rpc.bind(endpoints.webrtc_rpc())
    governor = ctx.socket(zmq.SUB)
    governor.setsockopt(zmq.LINGER, 0)
    governor.setsockopt(zmq.SUBSCRIBE, ViewerAdmission.TOPIC)
    governor.connect(endpoints.governor_pub())

    def publish(msg: Message) -> None:
        try:
            pub.send_multipart(encode(msg), flags=zmq.NOBLOCK)
        except zmq.Again:
            pass

    heartbeats: dict[str, tuple[Heartbeat, float]] = {}
    feeds = {
        cam.id: EncodedFeed(cam.id, endpoints.encoder_pub(cam.id), ctx, heartbeats)
        for cam in config.cameras
    }
    addresses = config.webrtc.ice_addresses
    loopback_only = bool(addresses) and all(a.startswith("127.") or a == "::1" for a in addresses)
    manager = SessionManager(config, feeds, publish, loopback_only)

    async def follow_governor() -> None:
        while True:
            frames = await governor.recv_multipart()
            try:
                await manager.admit(decode_as(ViewerAdmission, frames))
            except MessageError as e:
                log.warning("dropped a bad message: %s", e)

    async def beat() -> None:
        while True:
            publish(Heartbeat("webrtc", os.getpid(), service.started))
            await asyncio.sleep(1.0)

    tasks = [asyncio.ensure_future(f.run()) for f in feeds.values()]
    tasks += [
        asyncio.ensure_future(serve(rpc, manager.handlers())),
        asyncio.ensure_future(manager.run()),
        asyncio.ensure_future(beat()),
        asyncio.ensure_future(follow_governor()),
    ]
    log.info("WebRTC signalling on %s", endpoints.webrtc_rpc())
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await manager.close_all()
        for f in feeds.values():
            f.close()
        pub.close()
        rpc.close()
        governor.close()
        ctx.term()
        unlink_ipc(endpoints.webrtc_pub())
        unlink_ipc(endpoints.webrtc_rpc())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="titanium.services.webrtc")
    parser.add_argument("--config", default=os.environ.get("TITANIUM_CONFIG"))
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"titanium webrtc: bad config: {e}", file=sys.stderr)
        return 2
    service = Service("webrtc")
    logging.getLogger("aioice").setLevel(logging.WARNING)  # a line per ICE check otherwise
    proof.install()
    gather_on(config.webrtc.ice_addresses)
    started = time.monotonic()
    service.run_async(run(config, service))
    log.info("stopped after %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
