"""``python -m titanium.services.capture``: one capture process per camera."""

from __future__ import annotations

import sys

from titanium.common.endpoints import Endpoints
from titanium.common.service import Service, camera_service_args, pin_cpus, set_realtime
from titanium.services.capture.factory import make_source
from titanium.services.capture.loop import run_capture


def main(argv: list[str] | None = None) -> int:
    config, camera = camera_service_args("capture", argv)
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
