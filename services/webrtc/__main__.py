"""``python -m titanium.services.webrtc``: WebRTC viewers for every camera, signalled
through the HTTP front door over ZeroMQ."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

import zmq
import zmq.asyncio

from titanium.common import bus
from titanium.common.bus import Publisher, Subscriber
from titanium.common.config import Config
from titanium.common.endpoints import Endpoints, unlink_ipc
from titanium.common.messages import Heartbeat, ViewerAdmission
from titanium.common.rpc import serve, server_socket
from titanium.common.service import Service, run_until_cancelled, service_config
from titanium.services.webrtc import proof
from titanium.services.webrtc.feed import EncodedFeed
from titanium.services.webrtc.ice import bound_gathering, gather_on, keep_checking
from titanium.services.webrtc.manager import SessionManager

log = logging.getLogger("titanium.webrtc")


async def run(config: Config, service: Service) -> None:
    endpoints = Endpoints(config.runtime_dir)
    ctx = zmq.asyncio.Context()
    pub = Publisher(ctx, endpoints.webrtc_pub())
    rpc = server_socket(ctx)
    rpc.bind(endpoints.webrtc_rpc())
    governor = Subscriber(ctx, [endpoints.governor_pub()], (ViewerAdmission,))
    feeds = {
        cam.id: EncodedFeed(cam.id, endpoints.encoder_pub(cam.id), ctx) for cam in config.cameras
    }
    addresses = config.webrtc.ice_addresses
    loopback_only = bool(addresses) and all(a.startswith("127.") or a == "::1" for a in addresses)
    manager = SessionManager(config, feeds, pub.publish, loopback_only)

    async def follow_governor() -> None:
        async for msg in governor:
            assert isinstance(msg, ViewerAdmission)
            await manager.admit(msg)

    async def beat() -> None:
        while True:
            pub.publish(Heartbeat("webrtc", os.getpid(), service.started, **bus.losses()))
            await asyncio.sleep(1.0)

    log.info("WebRTC signalling on %s", endpoints.webrtc_rpc())
    await run_until_cancelled(
        [
            *(f.run() for f in feeds.values()),
            serve(rpc, manager.handlers()),
            manager.run(),
            beat(),
            follow_governor(),
        ],
        [
            manager.close_all,
            *(f.close for f in feeds.values()),
            pub.close,
            rpc.close,
            governor.close,
            ctx.term,
            lambda: unlink_ipc(endpoints.webrtc_rpc()),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    config = service_config("webrtc", argv)
    service = Service("webrtc")
    logging.getLogger("aioice").setLevel(logging.WARNING)  # a line per ICE check otherwise
    proof.install()
    gather_on(config.webrtc.ice_addresses)
    bound_gathering()
    keep_checking()
    started = time.monotonic()
    service.run_async(run(config, service))
    log.info("stopped after %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
