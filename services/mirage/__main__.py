"""``python -m titanium.services.mirage``: the printer's dial-out link to a Mirage proxy, for
remote viewers (docs/mirage-protocol.md). Signalling only: the video flows from the webrtc
service to the viewer, peer to peer or through TURN."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import zmq
import zmq.asyncio

from titanium.common import bus
from titanium.common.bus import Publisher
from titanium.common.config import Config
from titanium.common.endpoints import Endpoints
from titanium.common.messages import Heartbeat
from titanium.common.rpc import RpcClient
from titanium.common.service import Service, run_until_cancelled, service_config
from titanium.services.mirage.link import Link

log = logging.getLogger("titanium.mirage")


async def run(config: Config, service: Service) -> None:
    endpoints = Endpoints(config.runtime_dir)
    ctx = zmq.asyncio.Context()
    pub = Publisher(ctx, endpoints.mirage_pub())
    rpc = RpcClient(ctx, endpoints.webrtc_rpc())
    link = Link(config, rpc)

    async def beat() -> None:
        while True:
            pub.publish(
                Heartbeat(
                    "mirage", os.getpid(), service.started, detail=link.describe(), **bus.losses()
                )
            )
            await asyncio.sleep(1.0)

    await run_until_cancelled([link.run(), beat()], [rpc.close, pub.close, ctx.term])


def main(argv: list[str] | None = None) -> int:
    config = service_config("mirage", argv)
    service = Service("mirage")
    why_not = config.dial_out
    if why_not is not None:
        print(f"titanium mirage: nothing to dial: {why_not}", file=sys.stderr)
        return 2
    service.run_async(run(config, service))
    return 0


if __name__ == "__main__":
    sys.exit(main())
