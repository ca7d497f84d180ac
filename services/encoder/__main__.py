"""``python -m titanium.services.encoder``: one encoder process per camera, and its sockets."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

import zmq

from titanium.common.config import CameraConfig
from titanium.common.endpoints import Endpoints, unlink_ipc
from titanium.common.messages import (
    BitrateHint,
    FrameReady,
    KeyframeRequest,
    Message,
    MessageError,
    QualityCommand,
    StreamDemand,
    decode,
)
from titanium.common.service import Service, camera_service_args
from titanium.services.encoder.backend import BackendFactory, EncoderSettings
from titanium.services.encoder.loop import Encoder

log = logging.getLogger("titanium.encoder")
POLL_MS = 250  # how soon a stop request or a demand timeout is noticed when idle


def _drain(sock: zmq.Socket) -> list[Message]:
    out: list[Message] = []
    while True:
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return out
        try:
            out.append(decode(frames))
        except MessageError as e:
            log.warning("dropped a bad message: %s", e)


def run_encoder(
    camera: CameraConfig,
    endpoints: Endpoints,
    stopping: threading.Event,
    started: float,
    context_factory: Callable[[], zmq.Context] = zmq.Context,
) -> None:
    """Bind the publisher, follow capture and the WebRTC service until ``stopping``."""
    ctx = context_factory()
    pub_endpoint = endpoints.encoder_pub(camera.id)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.SNDHWM, 64)
    pub.bind(pub_endpoint)
    frames = ctx.socket(zmq.SUB)
    frames.setsockopt(zmq.SUBSCRIBE, FrameReady.TOPIC)
    frames.connect(endpoints.capture_pub(camera.id))
    orders = ctx.socket(zmq.SUB)
    for topic in (StreamDemand.TOPIC, KeyframeRequest.TOPIC, BitrateHint.TOPIC):
        orders.setsockopt(zmq.SUBSCRIBE, topic)
    orders.setsockopt(zmq.SUBSCRIBE, QualityCommand.TOPIC)
    orders.connect(endpoints.webrtc_pub())
    orders.connect(endpoints.governor_pub())
    for sock in (frames, orders):
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 64)
    poller = zmq.Poller()
    poller.register(frames, zmq.POLLIN)
    poller.register(orders, zmq.POLLIN)

    def send(parts: list[bytes]) -> None:
        try:
            pub.send_multipart(parts, flags=zmq.NOBLOCK)
        except zmq.Again:  # PUB drops at its high-water mark; never block the encoder
            pass

    factory = BackendFactory(camera.encoder, EncoderSettings.of(camera))
    encoder = Encoder(camera, factory, endpoints.ring_name(camera.id, "h264"), send, started)
    try:
        while not stopping.is_set():
            poller.poll(POLL_MS)
            for msg in _drain(orders):
                encoder.on_message(msg)
            # Newest frame wins: everything queued behind it is passed over and counted.
            ready = [m for m in _drain(frames) if isinstance(m, FrameReady)]
            if ready:
                encoder.on_frame(ready[-1], len(ready) - 1 if encoder.active else 0)
            encoder.tick()
    finally:
        encoder.close()
        for sock in (pub, frames, orders):
            sock.close()
        ctx.term()
        unlink_ipc(pub_endpoint)


def main(argv: list[str] | None = None) -> int:
    config, camera = camera_service_args("encoder", argv)
    service = Service(f"encoder-{camera.id}")
    run_encoder(camera, Endpoints(config.runtime_dir), service.stopping, service.started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
