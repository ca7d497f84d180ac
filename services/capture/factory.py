"""The one place that picks a camera's FrameSource from its config: the V4L2 device, the
test pattern or a file, each imported only when it is the one asked for (the V4L2 source
pulls in linuxpy, the file source PyAV)."""

from __future__ import annotations

from titanium.common.config import CameraConfig
from titanium.services.capture.source import FrameSource


def make_source(camera: CameraConfig) -> FrameSource:
    """The source the camera's ``device`` names; imports only what that source needs."""
    kind = camera.source_kind
    if kind == "testpattern":
        from titanium.services.capture.testpattern import TestPatternSource

        return TestPatternSource(camera.resolution.width, camera.resolution.height, camera.fps)
    if kind == "file":
        from titanium.services.capture.filesource import FileSource

        return FileSource(
            camera.device[5:], camera.resolution.width, camera.resolution.height, camera.fps
        )
    from titanium.services.capture.v4l2 import V4L2Source

    return V4L2Source(
        camera.device,
        camera.resolution.width,
        camera.resolution.height,
        camera.fps,
        camera.format,
        dict(camera.controls),
    )
