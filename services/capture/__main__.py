"""``python -m titanium.services.capture``: one capture process per camera."""

from __future__ import annotations

import argparse
import os
import sys

from titanium.common.config import ConfigError, load_config
from titanium.common.endpoints import Endpoints
from titanium.common.service import Service, pin_cpus, set_realtime
from titanium.services.capture.loop import run_capture
from titanium.services.capture.source import make_source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="titanium.services.capture")
    parser.add_argument("--config", default=os.environ.get("TITANIUM_CONFIG"))
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--camera", help="camera id")
    which.add_argument("--camera-index", type=int, default=0, help="position in the config")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.camera:
            camera = config.camera(args.camera)
        else:
            camera = config.cameras[args.camera_index]
    except ConfigError as e:
        print(f"titanium capture: bad config: {e}", file=sys.stderr)
        return 2
    except (KeyError, IndexError):
        print(f"titanium capture: no such camera in {config.source}", file=sys.stderr)
        return 2
    service = Service(f"capture-{camera.id}")
    if camera.cpu is not None:
        pin_cpus([camera.cpu])
    set_realtime(camera.realtime_priority)
    endpoints = Endpoints(config.runtime_dir)
    run_capture(
        camera,
        make_source(camera),
        endpoints.ring_name(camera.id, "raw"),
        endpoints.capture_pub(camera.id),
        service.stopping,
        service.started,
        orders_endpoint=endpoints.governor_pub(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
