"""The control socket's commands, for ``titaniumctl`` and Hydrogen.

Envelope (common/rpc.py): request ``{id, cmd, args}`` → ``{id, ok: true, result}`` or
``{id, ok: false, error: {code, message}}``. Error codes: ``bad_request`` (not msgpack,
not a map), ``unknown_command``, ``bad_args`` (missing, wrong type, out of range),
``not_found`` (no such camera or rung), ``internal``. Events go out on the governor's PUB
(topic ``event``, a GovernorEvent each; see common/messages.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from titanium.common.address import reachable
from titanium.common.rpc import RpcError, arg
from titanium.common.tokens import RIGHTS, Tokens, parse_ttl
from titanium.common.tokenurls import allowed_cameras, token_urls
from titanium.services.governor import policy, settings
from titanium.services.governor.core import Governor
from titanium.services.governor.printer import PRINT_STATES, from_hydrogen
from titanium.services.governor.status import camera_status, status_document

log = logging.getLogger("titanium.governor")


class Control:
    def __init__(self, governor: Governor, moonraker: Callable[[], dict[str, Any] | None]) -> None:
        self.gov = governor
        self._moonraker = moonraker
        self.tokens = Tokens(governor.config.state_dir)
        self.settings = settings.Settings(governor.config.state_dir)
        self._saving = asyncio.Lock()

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
        return {
            "status": self.status,
            "print.state": self.print_state,
            "stream.pause": self.pause,
            "stream.resume": self.resume,
            "quality.set": self.quality_set,
            "quality.auto": self.quality_auto,
            "cameras.list": self.cameras_list,
            "token.create": self.token_create,
            "token.list": self.token_list,
            "token.revoke": self.token_revoke,
        }

    def _cameras(self, args: dict[str, Any]) -> list[str]:
        """The camera named by ``args.camera``, or every camera when it is absent."""
        name = arg(args, "camera", str, None)
        if name is None:
            return [c.id for c in self.gov.cameras]
        if name not in self.gov.ladders:
            known = ", ".join(self.gov.ladders)
            raise RpcError("not_found", f"no camera {name!r}; cameras: {known}")
        return [name]

    async def _after(self, state: policy.State, cameras: list[str]) -> dict[str, Any]:
        """Adopt ``state``, decide at once (not at the next sample), save the settings
        (services/governor/settings.py) and tell the result."""
        self.gov.state = state
        self.gov.decide()
        async with self._saving:  # one writer; each writes the state as it is by then
            saved = settings.of_state(self.gov.state, self.gov.ladders, cameras)
            try:
                await asyncio.to_thread(self.settings.save, saved)  # fsync: off the loop
            except Exception as e:  # sqlite3.Error (not imported here) or OSError
                log.error("settings of %s not saved (lost at a restart): %s", cameras, e)
        return {"cameras": {c: camera_status(self.gov, c) for c in cameras}}

    async def status(self, args: dict[str, Any]) -> dict[str, Any]:
        """``status`` ``{}`` → ``{protection, printer, readings, conditions, cameras,
        admission, actuation, moonraker}``: the last sample, the printer's state, each
        camera's rung with the reason and what holds it down, the viewers served, and the
        scheduling of each service as read back from /proc."""
        return status_document(self.gov, self._moonraker())

    async def print_state(self, args: dict[str, Any]) -> dict[str, Any]:
        """``print.state`` ``{state: 'printing'|'paused'|'idle', first_layer?: bool,
        layer?: int, progress?: float 0..1}`` → ``{printer}``. Pushed by Hydrogen on every
        change; without ``first_layer``, layer 1 is the first layer."""
        state = arg(args, "state", str)
        if state not in PRINT_STATES:
            raise RpcError("bad_args", f"state must be one of {', '.join(PRINT_STATES)}")
        first = arg(args, "first_layer", bool, None)
        layer = arg(args, "layer", int, None)
        if layer is not None and layer < 0:
            raise RpcError("bad_args", "layer must be 0 or more")
        progress = arg(args, "progress", (int, float), None)
        if progress is not None and not 0 <= progress <= 1:
            raise RpcError("bad_args", "progress must be from 0 to 1")
        self.gov.printer.update(from_hydrogen(state, first, layer, progress), "hydrogen")
        self.gov.decide()
        return {"printer": self.gov.printer.describe()}

    async def pause(self, args: dict[str, Any]) -> dict[str, Any]:
        """``stream.pause`` ``{camera?: str, by?: str}`` → ``{cameras: {id: status}}``.
        Pauses one camera (all without ``camera``) until ``stream.resume``; viewers stay
        connected and see a "paused" frame once a second."""
        by = arg(args, "by", str, "the control socket")
        state = self.gov.state
        cams = self._cameras(args)
        for cam in cams:
            state = policy.pause(state, cam, by)
        return await self._after(state, cams)

    async def resume(self, args: dict[str, Any]) -> dict[str, Any]:
        """``stream.resume`` ``{camera?: str}`` → ``{cameras: {id: status}}``. Ends a
        ``stream.pause``; the print protection may still hold a camera down, and says why
        in its ``limits``."""
        state = self.gov.state
        cams = self._cameras(args)
        for cam in cams:
            state = policy.resume(state, cam)
        return await self._after(state, cams)

    async def quality_set(self, args: dict[str, Any]) -> dict[str, Any]:
        """``quality.set`` ``{camera: str, rung: str}`` → ``{cameras: {id: status}}``.
        ``rung`` is one of the camera's ladder (``cameras.list``), e.g. '720p15'; it becomes
        the best the camera gets until ``quality.auto``, and protection may go lower."""
        camera = arg(args, "camera", str)
        self._cameras({"camera": camera})
        rung = arg(args, "rung", str)
        ladder = self.gov.ladders[camera]
        try:
            index = ladder.index(rung)
        except KeyError:
            raise RpcError(
                "not_found", f"camera {camera} has no rung {rung!r}; rungs: {ladder.labels}"
            ) from None
        if ladder.rungs[index].paused:
            raise RpcError("bad_args", "use stream.pause to pause a camera")
        return await self._after(policy.set_best(self.gov.state, camera, index), [camera])

    async def quality_auto(self, args: dict[str, Any]) -> dict[str, Any]:
        """``quality.auto`` ``{camera?: str}`` → ``{cameras: {id: status}}``. Ends
        ``quality.set``: the camera climbs back as the board allows."""
        state = self.gov.state
        cams = self._cameras(args)
        for cam in cams:
            state = policy.set_best(state, cam, None)
        return await self._after(state, cams)

    async def cameras_list(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """``cameras.list`` ``{}`` → ``[{id, device, priority, ladder: [rung…], rung, paused,
        online, mode, viewers}]``."""
        out = []
        for cam in self.gov.config.cameras:
            st = camera_status(self.gov, cam.id)
            out.append(
                {
                    "id": cam.id,
                    "device": cam.device,
                    "priority": cam.priority,
                    "ladder": [r.describe() for r in self.gov.ladders[cam.id].rungs],
                    **{k: st[k] for k in ("rung", "paused", "online", "mode", "viewers")},
                }
            )
        return out

    async def token_create(self, args: dict[str, Any]) -> dict[str, Any]:
        """``token.create`` ``{name: str, cameras?: [str] (every camera without),
        rights?: 'view'|'control'|'admin' ('view'), ttl?: '30d'|'12h'|'45m'|'90s' or
        seconds (30 days)}`` → ``{token, grant: {id, name, cameras, rights, issued,
        expires}, urls: [{camera, host, urls: {mjpeg_stream, mjpeg_snapshot,
        webrtc_camerastreamer, webrtc_mediamtx, octoprint_webrtc, whep, jmuxer}}]}``: what
        ``titaniumctl token create --json`` prints (common/tokenurls.py)."""
        name = arg(args, "name", str)
        if not name.strip():
            raise RpcError("bad_args", "argument 'name' must not be empty")
        cameras = arg(args, "cameras", list, [])
        if not all(isinstance(c, str) for c in cameras):
            raise RpcError("bad_args", "argument 'cameras' must be a list of camera ids")
        try:
            allowed_cameras(self.gov.config, cameras)
        except ValueError as e:
            raise RpcError("bad_args", f"argument 'cameras': {e}") from None
        rights = arg(args, "rights", str, "view")
        if rights not in RIGHTS:
            raise RpcError("bad_args", f"argument 'rights' must be one of {', '.join(RIGHTS)}")
        ttl = arg(args, "ttl", (str, int, float), "30d")
        try:
            seconds = parse_ttl(str(ttl))
        except ValueError as e:
            raise RpcError("bad_args", f"argument 'ttl': {e}") from None

        def issue() -> dict[str, Any]:
            # SQLite and `hostname -I` block: off the loop, which serves the other commands.
            token, grant = self.tokens.create(name, cameras, rights, seconds)
            hosts = reachable(self.gov.config.http.listen)
            urls = token_urls(self.gov.config, token, grant.cameras, hosts)
            return {"token": token, "grant": grant.describe(), "urls": urls}

        return await asyncio.to_thread(issue)

    async def token_list(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """``token.list`` ``{}`` → ``[{id, name, cameras, rights, issued, expires, revoked:
        unix time or null, expired: bool}]``, newest first; never the tokens themselves."""
        return await asyncio.to_thread(self.tokens.list)

    async def token_revoke(self, args: dict[str, Any]) -> dict[str, bool]:
        """``token.revoke`` ``{id: str}`` → ``{revoked: bool}``, false when no token with
        that id was issued here. The front door ends the token's sessions within 2 s."""
        token_id = arg(args, "id", str)
        return {"revoked": await asyncio.to_thread(self.tokens.revoke, token_id)}
