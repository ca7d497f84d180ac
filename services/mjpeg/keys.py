"""The front door's shared objects, as typed aiohttp application keys."""

from __future__ import annotations

from aiohttp import web

from titanium.common.config import Config
from titanium.common.messages import Heartbeat
from titanium.common.rpc import RpcClient
from titanium.services.mjpeg.feed import CameraFeed
from titanium.services.mjpeg.health import Health
from titanium.services.mjpeg.viewers import Viewers

FEEDS = web.AppKey("feeds", dict[str, CameraFeed])
CONFIG = web.AppKey("config", Config)
HEARTBEATS = web.AppKey("heartbeats", dict[str, tuple[Heartbeat, float]])
STARTED = web.AppKey("started", float)
HEALTH = web.AppKey("health", Health)
RPC = web.AppKey("webrtc_rpc", RpcClient)
GOVERNOR = web.AppKey("governor_rpc", RpcClient)
VIEWERS = web.AppKey("viewers", Viewers)
