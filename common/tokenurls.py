"""The URLs a token is pasted in as, for each client and dialect, on each address Titanium is
reached at: what ``titaniumctl token create`` prints and the control socket's
``token.create`` returns (Hydrogen shows them), built in one place so both say the same.

Each client carries the token where it can (PROTOCOLS.md, "Tokens that browser clients can
carry"): ``?token=`` for MJPEG, snapshots, camera-streamer signalling and jmuxer; the ``/t/TOKEN/``
path prefix for WHEP, since both frontends' WHEP clients drop the query. The first camera of
the config is the one served without a camera in the path; every other one is under
``/CAMERA/``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from titanium.common.address import Address
from titanium.common.config import Config

# (key, who pastes it, where): the order they are printed in.
DIALECTS = (
    ("mjpeg_stream", 'Mainsail/Fluidd "MJPEG-Streamer", OctoPrint', "stream URL"),
    ("mjpeg_snapshot", 'Mainsail/Fluidd "MJPEG-Streamer", OctoPrint', "snapshot URL"),
    ("webrtc_camerastreamer", 'Mainsail/Fluidd "WebRTC (camera-streamer)"', "stream URL"),
    ("webrtc_mediamtx", 'Mainsail/Fluidd "WebRTC (MediaMTX)"', "stream URL"),
    ("octoprint_webrtc", "OctoPrint", "WebRTC stream URL"),
    ("whep", "WHEP players (OBS, GStreamer whepsrc, …)", "URL"),
    ("jmuxer", 'Mainsail "jmuxer-stream"', "stream URL"),
)


def allowed_cameras(config: Config, cameras: Iterable[str]) -> tuple[str, ...]:
    """The config's cameras a token for ``cameras`` sees (every one when empty), in the
    config's order; ValueError naming the cameras when one of them is not in the config."""
    known = [c.id for c in config.cameras]
    wanted = list(cameras)
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise ValueError(
            f"no camera {', '.join(map(repr, unknown))} in this config; cameras: {', '.join(known)}"
        )
    return tuple(c for c in known if not wanted or c in wanted)


def camera_urls(host: Address, token: str, camera: str | None) -> dict[str, str]:
    """Each dialect's URL for one camera (None: the config's first, served unprefixed)."""
    t = quote(token, safe="")
    cam = f"/{quote(camera, safe='')}" if camera else ""
    query = f"?token={t}"
    return {
        "mjpeg_stream": host.http_url(f"{cam}/stream{query}"),
        "mjpeg_snapshot": host.http_url(f"{cam}/snapshot{query}"),
        "webrtc_camerastreamer": host.http_url(f"{cam}/webrtc{query}"),
        # The frontends append `whep` to this base and drop any query.
        "webrtc_mediamtx": host.http_url(f"/t/{t}{cam}/"),
        "octoprint_webrtc": f"webrtc://{host}{cam}/webrtc{query}",
        "whep": host.http_url(f"/t/{t}{cam}/whep"),
        # Mainsail's jmuxer player takes only an absolute ws:// (or wss://) URL.
        "jmuxer": f"ws://{host}{cam}/jmuxer{query}",
    }


def token_urls(
    config: Config, token: str, cameras: Iterable[str], hosts: list[Address]
) -> list[dict[str, Any]]:
    """``[{camera, host, urls: {dialect: url}}]`` for each camera the token sees (``cameras``
    as granted: empty for every one) on each of ``hosts`` (common.address.reachable)."""
    first = config.cameras[0].id
    return [
        {
            "camera": cam,
            "host": str(host),
            "urls": camera_urls(host, token, None if cam == first else cam),
        }
        for cam in allowed_cameras(config, cameras)
        for host in hosts
    ]
