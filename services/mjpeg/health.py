"""Which services run and whether they answer: supervisord's view (over its unix socket)
joined with each service's heartbeat on the bus, for ``/status``."""

from __future__ import annotations

import asyncio
import logging
import time
import xmlrpc.client
from typing import Any

import zmq
import zmq.asyncio

from titanium.common.bus import Subscriber
from titanium.common.config import Config
from titanium.common.endpoints import Endpoints
from titanium.common.messages import EncoderStatus, Heartbeat

log = logging.getLogger("titanium.mjpeg.health")
HEARTBEAT_STALE = 3.0
PER_CAMERA = ("capture", "encoder")  # supervisord programs with one process per camera


class Health:
    """Heartbeats and encoder status from every service but capture (whose feed already
    listens to it), and supervisord's process table when supervisord runs us."""

    def __init__(
        self,
        config: Config,
        ctx: zmq.asyncio.Context,
        heartbeats: dict[str, tuple[Heartbeat, float]],
    ) -> None:
        self.config = config
        self.heartbeats = heartbeats
        self.encoders: dict[str, EncoderStatus] = {}
        endpoints = Endpoints(config.runtime_dir)
        self._socket = endpoints.supervisor_socket
        heard = [endpoints.webrtc_pub(), endpoints.governor_pub(), endpoints.mirage_pub()]
        heard += [endpoints.encoder_pub(cam.id) for cam in config.cameras]
        self.sub = Subscriber(ctx, heard, (Heartbeat, EncoderStatus))

    async def run(self) -> None:
        async for msg in self.sub:
            if isinstance(msg, Heartbeat):
                self.heartbeats[msg.service] = (msg, time.monotonic())
            elif isinstance(msg, EncoderStatus):
                self.encoders[msg.camera] = msg

    def _supervised(self) -> list[dict[str, Any]] | None:
        """supervisord's process table, or None when it does not run us."""
        if not self._socket.exists():
            return None
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(serverurl=f"unix://{self._socket}")
        proxy = xmlrpc.client.ServerProxy("http://localhost", transport=transport)
        try:
            info: Any = proxy.supervisor.getAllProcessInfo()
            return list(info)
        except (OSError, xmlrpc.client.Error) as e:
            log.debug("supervisord did not answer: %s", e)
            return None

    def _name(self, info: dict[str, Any]) -> str:
        """supervisord's 'capture-0' as the service calls itself: 'capture-cam0'."""
        name = str(info["name"])
        program, _, index = name.rpartition("-")
        if program in PER_CAMERA and index.isdigit() and int(index) < len(self.config.cameras):
            return f"{program}-{self.config.cameras[int(index)].id}"
        return name

    async def services(self, own: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        table = await asyncio.get_running_loop().run_in_executor(None, self._supervised)
        names: list[str] = []
        states: dict[str, str] = {}
        pids: dict[str, int] = {}
        if table is not None:
            for info in table:
                name = self._name(info)
                names.append(name)
                states[name] = str(info["statename"]).lower()
                if info.get("pid"):
                    pids[name] = int(info["pid"])
        else:
            names = [f"capture-{c.id}" for c in self.config.cameras]
            names += [n for n in self.heartbeats if n not in names]
        out: dict[str, Any] = {}
        for name in names:
            if name == "mjpeg":
                out[name] = own
                continue
            seen = self.heartbeats.get(name)
            state = states.get(name, "running" if seen else "starting")
            entry: dict[str, Any] = {"state": state, "pid": None, "uptime": None}
            if seen is not None:
                beat, at = seen
                stale = now - at > HEARTBEAT_STALE
                if state == "running" and stale:
                    entry["state"] = "not responding"
                elif state == "running" and beat.state != "running":
                    entry["state"] = beat.state
                entry.update(
                    pid=pids.get(name, beat.pid),
                    uptime=round(time.time() - beat.started, 1),
                    last_seen_s=round(now - at, 2),
                    bus={"missed": beat.missed, "bad": beat.bad},  # what it lost on the bus
                )
                if beat.detail:  # e.g. the Mirage link: connected since …, or its last error
                    entry["detail"] = beat.detail
            elif state == "running":
                entry["state"] = "starting"  # up, but not talking yet
                entry["pid"] = pids.get(name)
            out[name] = entry
        out.setdefault("mjpeg", own)
        return out

    def close(self) -> None:
        self.sub.close()
