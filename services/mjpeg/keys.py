"""The front door's shared objects, as typed aiohttp application keys."""

from __future__ import annotations

from aiohttp import web

from titanium.common.config import Config
from titanium.common.messages import Heartbeat
from titanium.common.rpc import RpcClient
from titanium.common.tokens import Grant
from titanium.services.mjpeg.buslink import BusLink
from titanium.services.mjpeg.feed import CameraFeed
from titanium.services.mjpeg.health import Health

FEEDS = web.AppKey("feeds", dict[str, CameraFeed])
CONFIG = web.AppKey("config", Config)
HEARTBEATS = web.AppKey("heartbeats", dict[str, tuple[Heartbeat, float]])
STARTED = web.AppKey("started", float)
HEALTH = web.AppKey("health", Health)
WEBRTC_RPC = web.AppKey("webrtc_rpc", RpcClient)  # the WebRTC service's signalling
GOVERNOR_RPC = web.AppKey("governor_rpc", RpcClient)  # the governor's control socket
BUS = web.AppKey("bus", BusLink)

# Per request: what its token grants (common/tokens.py Grant), None when auth is off or the
# request is exempt. Set by the auth middleware before any handler runs.
GRANT = web.RequestKey("grant", Grant | None)
