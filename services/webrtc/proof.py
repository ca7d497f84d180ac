"""Proof that aiortc never encodes on Titanium's path: every call of its H.264 encoder's
``encode`` is counted (and logged as an error). Tracks hand it ``av.Packet``s, which it only
packs; a count above zero means a track returned raw frames and the board paid for a second
H.264 encode per viewer."""

from __future__ import annotations

import logging
from typing import Any

from aiortc.codecs.h264 import H264Encoder

log = logging.getLogger("titanium.webrtc")
_calls = 0
_original = H264Encoder.encode


def _counting_encode(self: H264Encoder, *args: Any, **kwargs: Any) -> Any:
    global _calls
    _calls += 1
    if _calls == 1:
        log.error("aiortc's own H.264 encoder was invoked: a track returned raw frames")
    return _original(self, *args, **kwargs)


def install() -> None:
    H264Encoder.encode = _counting_encode  # type: ignore[method-assign]


def aiortc_encodes() -> int:
    return _calls
