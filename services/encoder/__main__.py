"""``python -m titanium.services.encoder``: one encoder process per camera, and its sockets."""

from __future__ import annotations

import logging
import sys
import threading

import zmq

from titanium.common.bus import Publisher, Subscriber
from titanium.common.config import CameraConfig
from titanium.common.endpoints import Endpoints
from titanium.common.messages import (
    BitrateHint,
    FrameReady,
    KeyframeRequest,
    QualityCommand,
    StreamDemand,
)
from titanium.common.service import Service, camera_service_args
from titanium.services.encoder.backend import EncoderSettings
from titanium.services.encoder.factory import BackendFactory
from titanium.services.encoder.loop import Encoder

log = logging.getLogger("titanium.encoder")
POLL_MS = 250  # how soon a stop request or a demand timeout is noticed when idle


def run_encoder(
    camera: CameraConfig, endpoints: Endpoints, stopping: threading.Event, started: float
) -> None:
    """Bind the publisher, follow capture and the viewers' services until ``stopping``."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, endpoints.encoder_pub(camera.id), hwm=64)
    frames = Subscriber(ctx, [endpoints.capture_pub(camera.id)], (FrameReady,), hwm=64)
    orders = Subscriber(
        ctx,
        # The front door asks for H.264 too (its WebSocket dialects): demand and keyframes.
        [endpoints.webrtc_pub(), endpoints.mjpeg_pub(), endpoints.governor_pub()],
        (StreamDemand, KeyframeRequest, BitrateHint, QualityCommand),
        hwm=64,
    )
    poller = zmq.Poller()
    poller.register(frames.socket, zmq.POLLIN)
    poller.register(orders.socket, zmq.POLLIN)
    factory = BackendFactory(camera.encoder, EncoderSettings.of(camera))
    encoder = Encoder(camera, factory, endpoints.ring_name(camera.id, "h264"), pub.send, started)
    frames.pause()  # nobody watches yet: no FrameReady reaches us until someone does
    try:
        while not stopping.is_set():
            poller.poll(POLL_MS)
            for msg in orders.drain():
                encoder.on_message(msg)
            # Frames only while someone watches: an idle encoder wakes for its orders and
            # its heartbeat, not 30 times a second to pass a frame over. Resubscribing
            # starts at capture's next frame, which the demand makes an IDR.
            if encoder.idle_check():
                frames.resume()
            else:
                frames.pause()
            # Newest frame wins: everything queued behind it is passed over and counted.
            ready = [m for m in frames.drain() if isinstance(m, FrameReady)]
            encoder.frames_heard += len(ready)
            if ready:
                encoder.on_frame(ready[-1], len(ready) - 1 if encoder.active else 0)
            encoder.tick()
    finally:
        encoder.close()
        for sock in (pub, frames, orders):
            sock.close()
        ctx.term()


def main(argv: list[str] | None = None) -> int:
    config, camera = camera_service_args("encoder", argv)
    service = Service(f"encoder-{camera.id}")
    run_encoder(camera, Endpoints(config.runtime_dir), service.stopping, service.started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
