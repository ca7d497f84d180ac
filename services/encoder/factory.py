"""The factory that picks an H.264 backend from config and probing.

Backends: ``h264_v4l2m2m`` (the Pi 4's hardware encoder through PyAV), ``libx264`` (every
other board, the Pi 5 included) and ``passthrough`` (the camera gives H.264 already). The
choice is made here, when the first frame shows what the source gives, never at import
time: PyAV is imported only once there is something to encode, so an idle encoder (and
an MJPEG-only setup) never loads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from titanium.common import formats
from titanium.services.encoder.backend import BackendError, EncoderSettings, H264Backend

log = logging.getLogger("titanium.encoder")

PASSTHROUGH_FOURCCS = (formats.H264,)


class BackendFactory:
    """Picks the backend for a source: the configured one where it can work, with a logged
    fallback where it cannot. A hardware encoder that failed to open is not probed again
    (each probe touches the device and logs)."""

    def __init__(
        self,
        choice: str,
        settings: EncoderSettings,
        opener: Callable[[str, EncoderSettings, int, int], H264Backend] | None = None,
    ) -> None:
        self.choice = choice  # 'auto', 'libx264', 'h264_v4l2m2m'
        self.settings = settings
        self.failures: dict[str, str] = {}  # backend name -> why it could not open
        self._open = opener or open_backend

    def make(self, source_fourcc: str, width: int, height: int) -> H264Backend:
        """The backend for ``source_fourcc`` frames of this size, opened (which is the probe
        for a hardware encoder); raises BackendError when none opens."""
        if source_fourcc in PASSTHROUGH_FOURCCS:
            if self.choice != "auto":
                log.info(
                    "the camera gives H.264 already: passing it through (encoder %r is used "
                    "only for raw frames)",
                    self.choice,
                )
            return self._open("passthrough", self.settings, width, height)
        order = ["libx264"] if self.choice == "libx264" else ["h264_v4l2m2m", "libx264"]
        for name in order:
            if name in self.failures:
                continue
            try:
                backend = self._open(name, self.settings, width, height)
            except BackendError as e:
                self.failures[name] = str(e)
                log.warning("%s cannot be used: %s; falling back", name, e)
                continue
            log.info("H.264 backend: %s", backend.name)
            return backend
        raise BackendError("no H.264 encoder opens: " + "; ".join(self.failures.values()))

    def failed(self, name: str, why: str) -> None:
        """A backend that opened broke while encoding. A hardware encoder is not tried
        again; libx264 is always worth a fresh instance."""
        if name == "h264_v4l2m2m":
            self.failures[name] = why

    @property
    def error(self) -> str:
        """Why a preferred backend is not in use, for EncoderStatus."""
        return "; ".join(f"{k}: {v}" for k, v in self.failures.items())


def open_backend(name: str, settings: EncoderSettings, width: int, height: int) -> H264Backend:
    """Open backend ``name`` for frames of this size; its module is imported here, on first
    use."""
    if name == "passthrough":
        from titanium.services.encoder.passthrough import PassthroughBackend

        return PassthroughBackend(settings)
    from titanium.services.encoder.pyav import Libx264Backend, V4l2M2mBackend

    if name == "libx264":
        return Libx264Backend(settings, width, height)
    if name == "h264_v4l2m2m":
        return V4l2M2mBackend(settings, width, height)
    raise BackendError(f"unknown backend {name!r}")
