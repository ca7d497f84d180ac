"""``/status``: per camera its source, format, size, delivered and measured fps, drops, viewers and
encoder; per service its state (supervisord's, checked against its heartbeat); the
governor's decisions with their reasons; and the access control in force (``auth``). A
token limited to some cameras sees only their part."""

from __future__ import annotations

import os
import time
from typing import Any

from aiohttp import web

from titanium.common import bus
from titanium.common.rpc import RpcError
from titanium.common.tokens import Grant
from titanium.services.mjpeg.auth import AUTH
from titanium.services.mjpeg.h264feed import H264_FEEDS
from titanium.services.mjpeg.hlsmuxer import HLS_MUXERS
from titanium.services.mjpeg.jmuxer import JmuxerClient
from titanium.services.mjpeg.keys import (
    BUS,
    CONFIG,
    FEEDS,
    GOVERNOR_RPC,
    GRANT,
    HEALTH,
    STARTED,
    WEBRTC_RPC,
)
from titanium.services.mjpeg.limits import LIMITS

WEBRTC_STATUS_TIMEOUT = 0.5
GOVERNOR_STATUS_TIMEOUT = 0.5


async def status_document(app: web.Application) -> dict[str, Any]:
    config = app[CONFIG]
    try:
        webrtc: dict[str, Any] | None = await app[WEBRTC_RPC].call(
            "status", timeout=WEBRTC_STATUS_TIMEOUT
        )
    except RpcError:
        webrtc = None
    try:
        governor: dict[str, Any] | None = await app[GOVERNOR_RPC].call(
            "status", timeout=GOVERNOR_STATUS_TIMEOUT
        )
    except RpcError:
        governor = None
    cameras: dict[str, Any] = {}
    for cam in config.cameras:
        feed = app[FEEDS][cam.id]
        st = feed.status
        enc = app[HEALTH].encoders.get(cam.id)
        rtc = (webrtc or {}).get("cameras", {}).get(cam.id, {})
        cameras[cam.id] = {
            "device": cam.device,
            "source": st.source if st else None,
            "online": st.online if st else False,
            "paused": st.paused if st else False,
            "format": st.fourcc if st else None,
            "width": st.width if st else cam.resolution.width,
            "height": st.height if st else cam.resolution.height,
            "fps_configured": cam.fps,
            # The rate capture's frames carry and the encoder is set for: what the camera
            # negotiated, or what it delivers when that differs for long.
            "fps": st.fps if st else 0.0,
            "fps_measured": st.fps_measured if st else 0.0,
            "frames": st.frames if st else 0,
            "frames_dropped": (st.dropped if st else 0) + feed.missed,
            "frames_dropped_capture": st.dropped if st else 0,
            "frames_dropped_delivery": feed.missed,
            "jpeg_frames": feed.jpeg_frames,
            "viewers": feed.viewers,
            "viewers_by_priority": dict(app[BUS].counts.get(cam.id, {})),
            "webrtc_viewers": rtc.get("viewers", 0),
            # AUs the WebRTC service read, and split into RTP: once each for all viewers.
            "webrtc_frames": rtc.get("taken", 0),
            "webrtc_packetized": rtc.get("packetized", 0),
            "max_viewers": config.streaming.max_viewers,
            # The H.264 WebSocket clients (jmuxer.py): their count and what they hold here
            # (the AUs read, ``taken``, are the feed's: the HLS muxer's too).
            "jmuxer": app[H264_FEEDS][cam.id].describe(JmuxerClient),
            # The LL-HLS muxer (hlsmuxer.py): running or not, what its window holds.
            "hls": app[HLS_MUXERS].describe(cam.id),
            "error": st.error if st else "",
            "controls": st.controls if st else {},
            "encoder": None
            if enc is None
            else {
                "backend": enc.backend,
                "active": enc.active,
                "bitrate": enc.bitrate,
                "fps": enc.fps,
                "frames_in": enc.frames_in,
                "frames_out": enc.frames_out,
                "keyframes": enc.keyframes,
                "skipped": enc.skipped,
                "error": enc.error,
            },
        }
    own = {
        "state": "running",
        "pid": os.getpid(),
        "uptime": round(time.time() - app[STARTED], 1),
        "bus": bus.losses(),
    }
    doc: dict[str, Any] = {
        "cameras": cameras,
        "services": await app[HEALTH].services(own),
    }
    # The limits in force, and how many requests they refused (429) since the start.
    doc["limits"] = app[LIMITS].describe()
    if AUTH in app:
        doc["auth"] = app[AUTH].describe()
    # The governor's own document (its control socket's ``status``), or why it is missing.
    doc["governor"] = governor if governor is not None else {"error": "not answering"}
    if webrtc is not None:
        doc["webrtc"] = {
            "sessions": webrtc.get("sessions", []),
            "aiortc_encodes": webrtc.get("aiortc_encodes"),
        }
    return doc


def _seen_by(doc: dict[str, Any], grant: Grant) -> dict[str, Any]:
    """Only the cameras (and their WebRTC sessions) the token covers."""
    doc["cameras"] = {cam: v for cam, v in doc["cameras"].items() if grant.sees(cam)}
    if "webrtc" in doc:
        sessions = doc["webrtc"].get("sessions") or []
        doc["webrtc"]["sessions"] = [
            s for s in sessions if not isinstance(s, dict) or grant.sees(str(s.get("camera")))
        ]
    return doc


async def status(request: web.Request) -> web.Response:
    doc = await status_document(request.app)
    grant: Grant | None = request.get(GRANT)
    if grant is not None and grant.cameras:
        doc = _seen_by(doc, grant)
    return web.json_response(doc)
