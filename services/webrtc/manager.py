"""The WebRTC sessions of every camera, and the signalling commands the front door relays.

Commands (request ``{id, cmd, args}`` → reply ``{id, ok, result | error}``, common/rpc.py):

- ``offer`` ``{camera, sdp, dialect, priority?, token?, address?, streams?, ice_servers?}``
  → ``{session, sdp}``: the viewer offers (WHEP, OctoPrint); the answer carries our gathered
  candidates. ``ice_servers`` ``[{urls, username?, credential?}]`` (the TURN credentials a
  Mirage proxy minted for this viewer) go first, before the configured ones, for this
  session's peer connection only; a bad shape is ``bad_args``.
- ``request`` ``{camera, keepalive, priority?, token?, address?, streams?}`` →
  ``{session, sdp}``: we offer (camera-streamer).
- ``priority`` is the viewer's (common/priority.py), ``medium`` by default: the governor's
  ViewerAdmission ends the sessions below it and refuses new ones (``busy``).
- ``token`` is the id of the token the session was opened with (it dies with it),
  ``address`` the viewer's; ``streams`` ``[by_token, by_address]`` the MJPEG streams they
  hold at the front door, which count against the same caps (titanium.http.limits
  ``sessions_per_token``, ``sessions_per_address``): over one, ``too_many``.
- ``sessions.close_token`` ``{id}`` → ``{closed}``: end every session of a revoked token.
- ``sessions.count`` ``{token?, address?}`` → ``{token, address}``: the sessions each holds.
- ``answer`` ``{session, sdp}`` → ``{}``: the viewer's answer to our offer.
- ``candidates`` ``{session, candidates: [{candidate, sdpMid, sdpMLineIndex}]}`` → ``{}``;
  queued when they arrive before the answer.
- ``close`` ``{session}`` → ``{}``.
- ``answer``, ``candidates`` and ``close`` also take ``token?``: a session opened with a
  token is ``not_found`` for any other.
- ``status`` ``{}`` → sessions per camera, and ``aiortc_encodes``, which must stay 0.

Errors: ``not_found`` (camera, session), ``bad_sdp``, ``busy`` (max_viewers reached),
``too_many`` (a session cap of the token or the address).

A slow remote viewer (docs/mirage.md): a camera is encoded once, so one bitrate serves all
its viewers, the lowest recent hint of theirs. A remote viewer (dialect ``mirage``: it came
through the Mirage proxy) cannot pull that bitrate below ``streaming.remote_bitrate_floor``
percent of the camera's bitrate while a LAN viewer (any other dialect) of the camera
watches: the LAN viewer keeps its picture and the remote one gets what its link carries of
it. Remote viewers alone pull it as low as their links need (never below MIN_BITRATE).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError

from titanium.common.config import Config, IceServer, floored_bitrate
from titanium.common.messages import (
    BitrateHint,
    KeyframeRequest,
    Message,
    StreamDemand,
    ViewerAdmission,
    ViewerCount,
)
from titanium.common.priority import admitted, parse_priority
from titanium.common.rpc import RpcError, arg
from titanium.services.webrtc.checks import check_sdp, video_codec_problem
from titanium.services.webrtc.feed import EncodedFeed
from titanium.services.webrtc.ice import (
    parse_candidates,
    prefer_h264,
    strip_mdns_candidates,
)
from titanium.services.webrtc.playout import offer_playout_delay, send_playout_delay
from titanium.services.webrtc.session import Feedback, Owner, Session
from titanium.services.webrtc.track import EncodedVideoTrack
from titanium.services.webrtc.turnprobe import rtc_configuration

log = logging.getLogger("titanium.webrtc")
AIORTC_ERRORS = (InvalidAccessError, InvalidStateError, OperationError)  # say what is wrong
DEMAND_PERIOD = 1.0
HINT_WINDOW = 5.0
ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


class SessionManager:
    def __init__(
        self,
        config: Config,
        feeds: dict[str, EncodedFeed],
        publish: Callable[[Message], None],
        loopback_only: bool,
    ) -> None:
        self.config = config
        self.feeds = feeds
        self.sessions: dict[str, Session] = {}
        self._publish = publish
        self._loopback_only = loopback_only
        self.admission = ViewerAdmission("low", "")
        if config.webrtc.playout_delay_ms is not None:
            offer_playout_delay()

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "offer": self.offer,
            "request": self.request,
            "answer": self.answer,
            "candidates": self.candidates,
            "close": self.close,
            "status": self.status,
            "sessions.close_token": self.close_token,
            "sessions.count": self.count,
        }

    # -- commands ---------------------------------------------------------------------

    async def offer(self, args: dict[str, Any]) -> dict[str, Any]:
        sdp = arg(args, "sdp", str)
        if "m=video" not in sdp:
            raise RpcError("bad_sdp", "the offer has no video section")
        camera = arg(args, "camera", str)
        self._feed(camera)  # an unknown camera is the first thing to say
        _check(sdp, "offer")
        problem = video_codec_problem(sdp)
        if problem:
            raise RpcError("bad_sdp", problem)
        extra = self._session_ice(args)
        session = self._new_session(
            await self._configuration(extra),
            camera,
            arg(args, "dialect", str, "whep"),
            _priority(args),
            self._owner(args),
        )
        pc = session.pc
        # Our transceiver first, H.264 preferred, so the offer's video section binds to it.
        video = pc.addTransceiver(session.track, direction="sendonly")
        prefer_h264(video)
        self._playout(video.sender)
        try:
            if self._loopback_only:
                sdp = strip_mdns_candidates(sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            for t in pc.getTransceivers():
                if t is not video:  # Mainsail offers audio too: we have none to send
                    t.direction = "inactive"
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, *AIORTC_ERRORS) as e:  # aiortc's reasons, e.g. no H.264
            await self._drop(session, f"bad offer: {e}")
            raise RpcError("bad_sdp", f"cannot use this offer: {e}") from None
        except Exception as e:  # passed checks.py yet aiortc failed: ours to fix
            await self._drop(session, f"offer failed: {type(e).__name__}: {e}")
            raise RpcError("bad_sdp", "cannot answer this offer") from None
        self._started(session, video.sender)
        return {"session": session.id, "sdp": pc.localDescription.sdp}

    async def request(self, args: dict[str, Any]) -> dict[str, Any]:
        keepalive = arg(args, "keepalive", bool, False)
        session = self._new_session(
            await self._configuration(),
            arg(args, "camera", str),
            "camera-streamer",
            _priority(args),
            self._owner(args),
        )
        pc = session.pc
        if keepalive:
            session.start_keepalive(pc.createDataChannel("keepalive"))
        video = pc.addTransceiver(session.track, direction="sendonly")
        prefer_h264(video)
        self._playout(video.sender)
        await pc.setLocalDescription(await pc.createOffer())
        self._started(session, video.sender)
        return {"session": session.id, "sdp": pc.localDescription.sdp}

    async def answer(self, args: dict[str, Any]) -> dict[str, Any]:
        session = self._session(args)
        sdp = arg(args, "sdp", str)
        if self._loopback_only:
            sdp = strip_mdns_candidates(sdp)
        _check(sdp, "answer")
        try:
            await session.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        except (ValueError, *AIORTC_ERRORS) as e:
            raise RpcError("bad_sdp", f"cannot use this answer: {e}") from None
        except Exception as e:
            log.warning("session %s: answer failed: %s: %s", session.id, type(e).__name__, e)
            raise RpcError("bad_sdp", "cannot use this answer") from None
        for cand in session.pending:
            await session.pc.addIceCandidate(cand)
        session.pending.clear()
        return {}

    async def candidates(self, args: dict[str, Any]) -> dict[str, Any]:
        session = self._session(args)
        try:
            found = parse_candidates(args.get("candidates"), self._loopback_only)
        except ValueError as e:
            raise RpcError("bad_args", str(e)) from None
        for cand in found:
            if session.pc.remoteDescription is None:
                session.pending.append(cand)
            else:
                await session.pc.addIceCandidate(cand)
        return {}

    async def close(self, args: dict[str, Any]) -> dict[str, Any]:
        await self._drop(self._session(args), "closed by the viewer")
        return {}

    async def close_token(self, args: dict[str, Any]) -> dict[str, Any]:
        token = arg(args, "id", str)
        ended = [s for s in self.sessions.values() if s.owner.token == token]
        for session in ended:
            await self._drop(session, f"token {token} revoked")
        return {"closed": len(ended)}

    async def count(self, args: dict[str, Any]) -> dict[str, Any]:
        by_token, by_address = self._held(
            arg(args, "token", str, None), arg(args, "address", str, None)
        )
        return {"token": by_token, "address": by_address}

    async def status(self, args: dict[str, Any]) -> dict[str, Any]:
        from titanium.services.webrtc.proof import aiortc_encodes

        return {
            "cameras": {
                cam: {
                    "viewers": self._viewers(cam),
                    "missed": feed.missed,
                    "taken": feed.taken,
                    "packetized": feed.packetized,
                    # capture → here, and → the first sender took it: recent AUs, in ms
                    "delay": feed.times.summary(),
                    **({"frame_times": feed.times.frames()} if args.get("frames") else {}),
                }
                for cam, feed in self.feeds.items()
            },
            "sessions": [s.describe() for s in self.sessions.values()],
            "aiortc_encodes": aiortc_encodes(),
        }

    # -- sessions ---------------------------------------------------------------------

    def _owner(self, args: dict[str, Any]) -> Owner:
        """Who opens a session, checked against the session caps (with the front door's
        MJPEG streams of the same token and address)."""
        owner = Owner(arg(args, "token", str, None), arg(args, "address", str, None))
        streams = arg(args, "streams", list, [0, 0])
        if len(streams) != 2 or not all(type(n) is int for n in streams):
            raise RpcError("bad_args", "'streams' is [by_token, by_address]")
        by_token, by_address = self._held(owner.token, owner.address)
        limits = self.config.http.limits
        if owner.token is not None and by_token + streams[0] >= limits.sessions_per_token:
            why, key = f"this token already has {limits.sessions_per_token}", "per_token"
        elif owner.address is not None and by_address + streams[1] >= limits.sessions_per_address:
            why, key = f"this address already has {limits.sessions_per_address}", "per_address"
        else:
            return owner
        raise RpcError(
            "too_many", f"{why} streams and peers open (titanium.http.limits.sessions_{key})"
        )

    def _held(self, token: str | None, address: str | None) -> tuple[int, int]:
        owners = [s.owner for s in self.sessions.values()]
        by_token = sum(1 for o in owners if token is not None and o.token == token)
        by_address = sum(1 for o in owners if address is not None and o.address == address)
        return by_token, by_address

    async def _configuration(self, extra: Sequence[IceServer] = ()) -> RTCConfiguration:
        """aiortc's ICE servers for a new peer connection: this offer's own (the TURN
        credentials the Mirage proxy minted for this viewer) before the configured ones,
        the TURN URL that answers first, since aiortc uses only the first. Awaited before
        the checks of :meth:`_owner` and :meth:`_new_session` (it may probe for up to
        1.5 s), so that no other offer slips in between a check and the session it admits."""
        return await rtc_configuration([*extra, *self.config.ice_servers])

    def _session_ice(self, args: dict[str, Any]) -> list[IceServer]:
        """The ``ice_servers`` of this offer, checked."""
        servers = []
        for i, server in enumerate(arg(args, "ice_servers", list, [])):
            if not isinstance(server, dict):
                server = {}
            urls = server.get("urls")
            urls = [urls] if isinstance(urls, str) else urls
            user, cred = server.get("username"), server.get("credential")
            if (
                not isinstance(urls, list)
                or not urls
                or not all(isinstance(u, str) and u.startswith(ICE_SCHEMES) for u in urls)
                or not all(v is None or isinstance(v, str) for v in (user, cred))
            ):
                raise RpcError(
                    "bad_args",
                    f"ice_servers[{i}]: expected {{urls: [stun:/turn:/turns: URL, ...], "
                    "username?: string, credential?: string}",
                )
            servers.append(IceServer(tuple(urls), user, cred))
        return servers

    def _new_session(
        self, ice: RTCConfiguration, camera: str, dialect: str, priority: str, owner: Owner
    ) -> Session:
        feed = self._feed(camera)
        if not admitted(priority, self.admission.min_priority):
            raise RpcError(
                "busy", f"{priority}-priority viewers are not served now: {self.admission.reason}"
            )
        limit = self.config.streaming.max_viewers
        if self._viewers(camera) >= limit:
            raise RpcError(
                "busy",
                f"camera {camera} already has {limit} WebRTC viewers "
                "(titanium.streaming.max_viewers)",
            )
        feedback = Feedback(lambda reason: self._keyframe(camera, reason), self._bitrate)
        track = EncodedVideoTrack(feed, lambda reason: self._keyframe(camera, reason))
        session = Session(camera, dialect, RTCPeerConnection(ice), track, feedback, priority, owner)
        self.sessions[session.id] = session
        feed.viewers += 1
        self._demand(camera)
        return session

    def _feed(self, camera: str) -> EncodedFeed:
        feed = self.feeds.get(camera)
        if feed is None:
            raise RpcError("not_found", f"no camera {camera!r}; cameras: {', '.join(self.feeds)}")
        return feed

    def _playout(self, sender: Any) -> None:
        if self.config.webrtc.playout_delay_ms is not None:
            send_playout_delay(sender, self.config.webrtc.playout_delay_ms)

    def _started(self, session: Session, sender: Any) -> None:
        session.watch_rtcp(sender)
        log.info("session %s: %s viewer of %s", session.id, session.dialect, session.camera)

    def _session(self, args: dict[str, Any]) -> Session:
        """The session named in ``args``, if the caller holds its token: one opened with a
        token answers only that token (another token is told it does not exist)."""
        sid = arg(args, "session", str)
        session = self.sessions.get(sid)
        holder = arg(args, "token", str, None)
        if session is None or (session.owner.token is not None and holder != session.owner.token):
            raise RpcError("not_found", f"no session {sid!r} (ended or never started)")
        return session

    async def _drop(self, session: Session, why: str) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        log.info("session %s (%s) ends: %s", session.id, session.camera, why)
        self.feeds[session.camera].viewers -= 1
        self._demand(session.camera)
        await session.close()

    def _viewers(self, camera: str) -> int:
        return sum(1 for s in self.sessions.values() if s.camera == camera)

    # -- messages to the encoder ------------------------------------------------------

    def _demand(self, camera: str) -> None:
        self._publish(StreamDemand(camera, "h264", self._viewers(camera), "webrtc"))
        counts: dict[str, int] = {}
        for s in self.sessions.values():
            if s.camera == camera:
                counts[s.priority] = counts.get(s.priority, 0) + 1
        self._publish(ViewerCount("webrtc", camera, counts))

    async def admit(self, admission: ViewerAdmission) -> None:
        """The governor's admission: end the sessions it no longer serves."""
        if admission.min_priority != self.admission.min_priority:
            log.info(
                "serving %s-priority viewers and up: %s", admission.min_priority, admission.reason
            )
        self.admission = admission
        for session in list(self.sessions.values()):
            if not admitted(session.priority, admission.min_priority):
                await self._drop(session, f"shed by the governor: {admission.reason}")

    def _keyframe(self, camera: str, reason: str) -> None:
        self._publish(KeyframeRequest(camera, reason))

    def _bitrate(self, session: Session, bitrate: int, source: str) -> None:
        """A viewer's hint, and the camera's shared bitrate it makes (see the module's
        docstring): the lowest recent hint, a remote viewer's raised to the floor while a
        LAN viewer watches."""
        now = time.monotonic()
        ceiling = self.config.camera(session.camera).bitrate_bps
        if source == "loss":
            previous = session.bitrate_hint[0] if session.bitrate_hint else ceiling
            bitrate = int(previous * 0.85)
        session.bitrate_hint = (bitrate, now)
        watching = [s for s in self.sessions.values() if s.camera == session.camera]
        floor = 0
        if any(not s.remote for s in watching):
            share = ceiling * self.config.streaming.remote_bitrate_floor // 100
            floor = floored_bitrate(share, ceiling)
        hints = [
            max(s.bitrate_hint[0], floor) if s.remote else s.bitrate_hint[0]
            for s in watching
            if s.bitrate_hint is not None and now - s.bitrate_hint[1] < HINT_WINDOW
        ]
        self._publish(BitrateHint(session.camera, min(hints), source))

    async def run(self) -> None:
        """Repeat the demand each second (the encoder idles without it) and end sessions
        that failed, never connected, or stopped answering the keep-alive."""
        while True:
            await asyncio.sleep(DEMAND_PERIOD)
            for camera in self.feeds:
                self._demand(camera)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                why = session.expired(now)
                if why:
                    await self._drop(session, why)

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            await self._drop(session, "service stopping")


def _check(sdp: str, what: str) -> None:
    try:
        check_sdp(sdp, what)
    except ValueError as e:
        raise RpcError("bad_sdp", str(e)) from None


def _priority(args: dict[str, Any]) -> str:
    try:
        return parse_priority(arg(args, "priority", str, None))
    except ValueError as e:
        raise RpcError("bad_args", str(e)) from None
