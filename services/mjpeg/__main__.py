"""``python -m titanium.services.mjpeg``: the HTTP front door."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable

import zmq.asyncio
from aiohttp import web

from titanium.common.config import Config
from titanium.common.service import Service, run_until_cancelled, service_config
from titanium.services.mjpeg.app import make_app

log = logging.getLogger("titanium.mjpeg")
# Seconds a stop waits for requests in flight, then again for their cancellation. Streams
# end at once (on_shutdown); this bounds a viewer whose socket no longer drains.
SHUTDOWN_TIMEOUT = 1.0


async def serve(config: Config, service: Service) -> None:
    ctx = zmq.asyncio.Context()
    app = make_app(config, ctx, service.started)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    listen = config.http.listen
    site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True)
    await site.start()
    log.info("serving on %s", listen.http_url())

    def cleanup() -> Awaitable[None]:
        # In a task of its own: this one is being cancelled, and aiohttp re-raises a
        # shutdown timeout inside a cancelled task, which would skip the cleanup that
        # closes the sockets (and ctx.term() would then wait for them forever).
        return asyncio.shield(asyncio.ensure_future(runner.cleanup()))

    await run_until_cancelled([asyncio.Event().wait()], [cleanup, ctx.term])


def main(argv: list[str] | None = None) -> int:
    config = service_config("mjpeg", argv)
    service = Service("mjpeg")
    service.run_async(serve(config, service))
    return 0


if __name__ == "__main__":
    sys.exit(main())
