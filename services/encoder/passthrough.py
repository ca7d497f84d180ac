"""Passthrough: the camera gives H.264 already, so its access units go out byte for byte.

Nothing is decoded or re-encoded. The camera decides its own keyframes and bitrate (set
through capture's V4L2 controls), so ``force_idr`` and bitrate hints cannot be honoured
here: a viewer that asks for a keyframe gets the camera's next one.
"""

from __future__ import annotations

from titanium.services.encoder.backend import AccessUnit, EncoderSettings, SourceFrame
from titanium.services.encoder.nal import is_idr


class PassthroughBackend:
    name = "passthrough"

    def __init__(self, settings: EncoderSettings) -> None:
        self.bitrate = settings.bitrate

    def encode(self, frame: SourceFrame, force_idr: bool) -> list[AccessUnit]:
        data = bytes(frame.data)
        return [AccessUnit(data, is_idr(data), frame.mono_ns, frame.wall_ns)]

    def set_bitrate(self, bitrate: int) -> None:
        pass  # the camera's own rate control; see the module docstring

    def close(self) -> None:
        pass
