"""Every ipc endpoint and shared-memory name, in one place, derived from the runtime directory.

Two Titanium instances with different runtime directories never share a socket or a segment:
shared-memory names (which live in one flat /dev/shm namespace) carry a short hash of the
runtime directory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

SHM_PREFIX = "titanium-"


@dataclass(frozen=True)
class Endpoints:
    runtime_dir: Path

    @property
    def instance(self) -> str:
        """Short stable id of this runtime directory, used in shared-memory names."""
        return hashlib.sha1(str(self.runtime_dir.resolve()).encode()).hexdigest()[:8]

    def _ipc(self, name: str) -> str:
        return f"ipc://{self.runtime_dir / name}"

    def capture_pub(self, camera_id: str) -> str:
        """PUB of one capture process: FrameReady, CameraStatus, heartbeats."""
        return self._ipc(f"capture-{camera_id}.pub")

    def encoder_pub(self, camera_id: str) -> str:
        """PUB of one encoder process: EncodedReady, EncoderStatus, heartbeats."""
        return self._ipc(f"encoder-{camera_id}.pub")

    def webrtc_pub(self) -> str:
        """PUB of the WebRTC service: StreamDemand, KeyframeRequest, BitrateHint, heartbeats."""
        return self._ipc("webrtc.pub")

    def webrtc_rpc(self) -> str:
        """ROUTER of the WebRTC service: signalling relayed by the HTTP front door."""
        return self._ipc("webrtc.rpc")

    def mirage_pub(self) -> str:
        """PUB of the Mirage dial-out service: heartbeats with its link state."""
        return self._ipc("mirage.pub")

    def mjpeg_pub(self) -> str:
        """PUB of the HTTP front door: ViewerCount, heartbeats, and StreamDemand and
        KeyframeRequest for its H.264 WebSocket clients."""
        return self._ipc("mjpeg.pub")

    def governor_pub(self) -> str:
        """PUB of the governor: QualityCommand, ViewerAdmission, GovernorEvent, heartbeats."""
        return self._ipc("governor.pub")

    def governor_rpc(self) -> str:
        """ROUTER of the governor: the control socket of titaniumctl and Hydrogen."""
        return self._ipc("governor.rpc")

    def ring_name(self, camera_id: str, stream: str) -> str:
        """Shared-memory name of a camera's frame ring ('raw', later 'h264', 'jpeg')."""
        return f"{SHM_PREFIX}{self.instance}-{camera_id}-{stream}"

    def shm_glob(self) -> str:
        """Glob under /dev/shm matching every segment of this instance."""
        return f"{SHM_PREFIX}{self.instance}-*"

    def ipc_files(self) -> list[Path]:
        """Socket files present under the runtime directory (for clean-up checks)."""
        return sorted(
            p for pattern in ("*.pub", "*.rpc", "*.sock") for p in self.runtime_dir.glob(pattern)
        )

    @property
    def supervisor_socket(self) -> Path:
        return self.runtime_dir / "supervisor.sock"


def ipc_path(endpoint: str) -> Path | None:
    """The socket file of an ``ipc://`` endpoint, None for other transports."""
    return Path(endpoint[len("ipc://") :]) if endpoint.startswith("ipc://") else None


def bind_private(sock: zmq.Socket[Any], endpoint: str) -> None:
    """Bind ``sock`` to an ipc endpoint whose file is owner-only from the moment it exists
    (the governor's control socket and events: commands over them need no password)."""
    old = os.umask(0o077)
    try:
        sock.bind(endpoint)
    finally:
        os.umask(old)
    path = ipc_path(endpoint)
    if path is not None:
        path.chmod(0o600)


def unlink_ipc(endpoint: str) -> None:
    """Remove the socket file of a bound ``ipc://`` endpoint: libzmq leaves it behind."""
    if endpoint.startswith("ipc://"):
        Path(endpoint[len("ipc://") :]).unlink(missing_ok=True)
