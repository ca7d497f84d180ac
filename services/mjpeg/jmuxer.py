"""The jmuxer dialect (Moonraker service ``jmuxer-stream``, Mainsail's JMuxerStream player):
``GET /jmuxer`` (``/CAMERA/jmuxer``) upgraded to a WebSocket that sends binary messages of
Annex-B H.264, one access unit each, as PROTOCOLS.md "More dialects / jmuxer" says:

- each client starts at SPS+PPS+IDR: a keyframe is asked for on join (the encoder's rate
  limit applies) and nothing is sent until it comes; jmuxer keeps only the first SPS/PPS
  it sees and drops what comes before them;
- every AU is followed by two AUD units, the encoder's own AUD and SEI removed (annexb.py);
- sent at the rate the camera is registered with: jmuxer gives every frame 1000/fps ms
  whatever the clock says, so ``?fps=`` (Mainsail's ``target_fps``) or else the camera's
  configured fps, never faster; a burst would grow its lag;
- ``?pace=0`` sends each AU as soon as it is encoded instead: for a client that times frames
  by their arrival (the viewer element's WebCodecs path, webcodecs.js), pacing would only
  add its queue to the latency;
- per-client backpressure: a client whose socket is behind, or whose few pending AUs are
  not sent yet, skips to the next keyframe; nothing queues beyond that;
- Mainsail never closes its socket when the panel goes and opens a new one on every
  settings change, so an address keeps at most ``PER_ADDRESS`` clients of a camera: the
  oldest (the orphan) is closed when another arrives. Beyond that the front door's session
  caps (sessions.py) and query-token auth apply as on every route, and ``?priority=``
  and the governor's admission as for MJPEG streams (a shed client's socket is dropped).

Messages from the client are read and ignored (jmuxer sends none).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque

from aiohttp import WSCloseCode, web

from titanium.services.mjpeg.h264feed import H264_FEEDS, H264Feed, H264Unit
from titanium.services.mjpeg.keys import BUS, CONFIG
from titanium.services.mjpeg.limits import client_address
from titanium.services.mjpeg.sessions import STREAMS, stream_session
from titanium.services.mjpeg.viewerargs import camera_named, viewer_priority

log = logging.getLogger("titanium.mjpeg.jmuxer")
PER_ADDRESS = 4  # clients of one camera from one address; more are Mainsail's orphans
# A socket with this much unsent is behind: at 640x480 it is several IDRs, at 1080p one.
BEHIND_BYTES = 256 * 1024
# jmuxer's maxDelay is 500 ms: AUs waiting for their turn beyond that are a lag it would
# cut anyway, so a client holds at most half a second of them.
PENDING_SECONDS = 0.5


class JmuxerClient:
    """One WebSocket client: its pending AUs, sent one per 1/fps by :meth:`pace`."""

    def __init__(
        self, ws: web.WebSocketResponse, request: web.Request, fps: float, paced: bool = True
    ) -> None:
        self.ws = ws
        self.paced = paced
        self.address = client_address(request)
        self.fps = fps
        self.pending: deque[H264Unit] = deque()
        self.max_pending = max(2, math.ceil(fps * PENDING_SECONDS))
        self.need_key = True
        self.sent = self.skips = 0
        self._transport = request.transport
        self._ready = asyncio.Event()

    def behind(self) -> bool:
        t = self._transport
        return t is None or t.is_closing() or t.get_write_buffer_size() > BEHIND_BYTES

    def offer(self, unit: H264Unit) -> None:
        if self.behind():
            # Its socket is not draining: nothing more is held for it until it does, and
            # then it starts again at a keyframe.
            if not self.need_key:
                self._skip()
            return
        if len(self.pending) >= self.max_pending:
            self._skip()
        if self.need_key:
            if not unit.keyframe:
                return
            self.need_key = False
        self.pending.append(unit)
        self._ready.set()

    def restart(self) -> None:
        self.pending.clear()
        self.need_key = True

    def _skip(self) -> None:
        self.skips += 1
        self.restart()

    def wants_keyframe(self) -> bool:
        return self.need_key and not self.behind()

    def held(self) -> tuple[int, int]:
        t = self._transport
        unsent = 0 if t is None or t.is_closing() else t.get_write_buffer_size()
        return sum(len(u.data) for u in self.pending) + unsent, self.skips

    async def pace(self) -> None:
        """Send the pending AUs, one per 1/fps at most, until the socket closes."""
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.fps if self.paced else 0.0
        due = loop.time()
        while not self.ws.closed:
            while not self.pending:
                self._ready.clear()
                await self._ready.wait()
            # Never ahead of the schedule; late (the encoder was slower) starts it anew.
            due = max(due, loop.time())
            await asyncio.sleep(due - loop.time())
            if not self.pending:
                continue  # skipped while we waited
            if self.behind():
                self._skip()
                continue
            unit = self.pending.popleft()
            await self.ws.send_bytes(unit.data)
            self.sent += 1
            due += interval


def _paced(request: web.Request) -> bool:
    text = request.query.get("pace", "1")
    if text not in ("0", "1"):
        raise web.HTTPBadRequest(text=f"pace must be 0 or 1, not {text!r}\n")
    return text == "1"


def _fps(request: web.Request, configured: float) -> float:
    text = request.query.get("fps")
    if text is None:
        return float(configured)
    try:
        fps = float(text)
    except ValueError:
        fps = math.nan
    if not 1 <= fps <= 120:
        raise web.HTTPBadRequest(text=f"fps must be a number from 1 to 120, not {text!r}\n")
    return fps


def _feed(request: web.Request) -> H264Feed:
    feeds = request.app[H264_FEEDS]
    return feeds[camera_named(request, feeds)]


async def _close(ws: web.WebSocketResponse) -> None:
    with contextlib.suppress(ConnectionError):
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"replaced by a newer client")


def _evict_orphans(request: web.Request, feed: H264Feed, address: str) -> None:
    """Close the oldest clients of ``address`` beyond PER_ADDRESS - 1 (room for a new one)."""
    mine = [c for c in feed.clients if isinstance(c, JmuxerClient) and c.address == address]
    for old in mine[: max(0, len(mine) - (PER_ADDRESS - 1))]:
        log.info(
            "%s: closing the oldest jmuxer client of %s (at most %d)",
            feed.camera_id,
            address,
            PER_ADDRESS,
        )
        feed.leave(old)
        request.app[STREAMS].keep(asyncio.ensure_future(_close(old.ws)))


async def jmuxer(request: web.Request) -> web.StreamResponse:
    feed = _feed(request)
    fps = _fps(request, request.app[CONFIG].camera(feed.camera_id).fps)
    paced = _paced(request)
    priority = viewer_priority(request)
    viewers = request.app[BUS]
    if not viewers.admits(priority):
        raise web.HTTPServiceUnavailable(
            text=f"{priority}-priority viewers are not served now: {viewers.reason}\n",
            headers={"Retry-After": "10"},
        )
    async with stream_session(request):
        # H.264 does not compress: permessage-deflate would only cost CPU per client.
        ws = web.WebSocketResponse(compress=False, max_msg_size=4096)
        await ws.prepare(request)
        client = JmuxerClient(ws, request, fps, paced)
        _evict_orphans(request, feed, client.address)
        # Counted as the front door's viewers of the camera (the governor's events and
        # /status), and ended with them when the governor sheds their priority.
        with viewers.watching(feed.camera_id, priority):
            feed.join(client)
            pacer = asyncio.ensure_future(client.pace())
            try:
                async for _ in ws:  # jmuxer sends nothing; this ends when the socket closes
                    pass
            finally:
                feed.leave(client)
                pacer.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await pacer
        return ws
