"""``python -m titanium.services.mjpeg``: the HTTP front door."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import zmq.asyncio
from aiohttp import web

from titanium.common.config import Config, ConfigError, load_config
from titanium.common.service import Service
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
    try:
        await asyncio.Event().wait()
    finally:
        # In a task of its own: this one is being cancelled, and aiohttp re-raises a
        # shutdown timeout inside a cancelled task, which would skip the cleanup that
        # closes the sockets (and ctx.term() would then wait for them forever).
        await asyncio.shield(asyncio.ensure_future(runner.cleanup()))
        ctx.term()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="titanium.services.mjpeg")
    parser.add_argument("--config", default=os.environ.get("TITANIUM_CONFIG"))
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"titanium mjpeg: bad config: {e}", file=sys.stderr)
        return 2
    service = Service("mjpeg")
    service.run_async(serve(config, service))
    return 0


if __name__ == "__main__":
    sys.exit(main())
