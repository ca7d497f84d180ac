"""One LL-HLS muxer per camera, shared by every HLS viewer of it: started by the first
playlist request, fed from the camera's H264Feed (the same AUs the WebSocket dialects get,
so no second encode), and stopped once no request has come for ``streaming.hls_idle_seconds``
(its demand ends with it, so the encoder idles). HLS viewers are plain HTTP requests: there
is nothing per viewer to keep, only the segmenter's bounded window per camera."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from titanium.services.mjpeg.h264feed import H264_FEEDS, H264Feed, H264Unit
from titanium.services.mjpeg.hls.segmenter import Segmenter
from titanium.services.mjpeg.keys import CONFIG

log = logging.getLogger("titanium.mjpeg.hls")
# hls.js (1.6) makes a blocking reload only when the playlist's last segment number is
# truthy: a window starting at 0 gets its first reload a target duration late, so playback
# stalls at the first segment's end and hls.js's target latency grows by a second for good.
FIRST_MSN = 1


class HlsMuxer:
    """A camera's segmenter as an H264Feed client: AUs go in from the first keyframe on,
    and again from the next keyframe after one was lost."""

    def __init__(self, camera_id: str, first_msn: int, first_part: int) -> None:
        self.camera_id = camera_id
        self.segmenter = Segmenter()
        # Numbers go on across a restart of the muxer: a player still holding the old
        # playlist must not take a new segment for one it has already played.
        self.segmenter.next_msn = first_msn
        self.segmenter.next_part_id = first_part
        self.need_key = True
        self.skips = 0
        self.requests = 0
        self.last_request = asyncio.get_running_loop().time()

    def touch(self) -> None:
        """A request came."""
        self.requests += 1
        self.alive()

    def alive(self) -> None:
        """A held request is still activity: the idle time counts from its answer."""
        self.last_request = asyncio.get_running_loop().time()

    def offer(self, unit: H264Unit) -> None:
        if self.need_key:
            if not unit.keyframe:
                return
            self.need_key = False
        self.segmenter.push(unit.data, unit.pts, unit.keyframe, unit.ts_wall)

    def restart(self) -> None:
        if not self.need_key:
            self.skips += 1
        self.need_key = True

    def wants_keyframe(self) -> bool:
        return self.need_key

    def window_bytes(self) -> int:
        seg = self.segmenter
        current = seg.current.size if seg.current is not None else 0
        return len(seg.init) + current + sum(s.size for s in seg.segments)

    def held(self) -> tuple[int, int]:
        return self.window_bytes(), self.skips


class HlsMuxers:
    """The running muxers by camera; each stops itself after the idle time."""

    def __init__(self, feeds: dict[str, H264Feed], idle_seconds: float) -> None:
        self.feeds = feeds
        self.idle_seconds = idle_seconds
        self.muxers: dict[str, HlsMuxer] = {}
        self.started: dict[str, int] = {}  # starts per camera since the front door's start
        self._next: dict[str, tuple[int, int]] = {}  # (msn, part id) a restart goes on from
        self._reapers: dict[str, asyncio.Task[None]] = {}

    def running(self, camera_id: str) -> HlsMuxer | None:
        """The camera's muxer if it runs (the request counts as activity), else None."""
        muxer = self.muxers.get(camera_id)
        if muxer is not None:
            muxer.touch()
        return muxer

    def start(self, camera_id: str) -> HlsMuxer:
        """The camera's muxer, started (joining its H.264 feed) if it was not running."""
        muxer = self.running(camera_id)
        if muxer is not None:
            return muxer
        msn, part = self._next.get(camera_id, (FIRST_MSN, 0))
        muxer = self.muxers[camera_id] = HlsMuxer(camera_id, msn, part)
        muxer.touch()
        self.started[camera_id] = self.started.get(camera_id, 0) + 1
        log.info("%s: LL-HLS muxer started", camera_id)
        self.feeds[camera_id].join(muxer)
        self._reapers[camera_id] = asyncio.ensure_future(self._stop_when_idle(muxer))
        return muxer

    async def _stop_when_idle(self, muxer: HlsMuxer) -> None:
        loop = asyncio.get_running_loop()
        while (left := muxer.last_request + self.idle_seconds - loop.time()) > 0:
            await asyncio.sleep(left)
        log.info(
            "%s: LL-HLS muxer stopped after %g s without a request",
            muxer.camera_id,
            self.idle_seconds,
        )
        self._stop(muxer)

    def _stop(self, muxer: HlsMuxer) -> None:
        cam = muxer.camera_id
        self.feeds[cam].leave(muxer)
        seg = muxer.segmenter
        self._next[cam] = (seg.next_msn, seg.next_part_id)
        self.muxers.pop(cam, None)
        self._reapers.pop(cam, None)

    def describe(self, camera_id: str) -> dict[str, Any]:
        """For /status: whether the camera's muxer runs and what its window holds."""
        muxer = self.muxers.get(camera_id)
        if muxer is None:
            return {"running": False, "started": self.started.get(camera_id, 0)}
        seg = muxer.segmenter
        return {
            "running": True,
            "started": self.started.get(camera_id, 0),
            "requests": muxer.requests,
            "segments": len(seg.segments),
            "window_bytes": muxer.window_bytes(),
            "next_msn": seg.next_msn,
            "skips": muxer.skips,
        }

    async def close(self) -> None:
        for task in list(self._reapers.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for muxer in list(self.muxers.values()):
            self._stop(muxer)


HLS_MUXERS = web.AppKey("hls_muxers", HlsMuxers)


def install(app: web.Application) -> None:
    """``app[HLS_MUXERS]`` over the app's H.264 feeds (h264feed.install first), stopped
    before the feeds close."""
    muxers = HlsMuxers(app[H264_FEEDS], app[CONFIG].streaming.hls_idle_seconds)
    app[HLS_MUXERS] = muxers

    async def close(app: web.Application) -> None:
        await muxers.close()

    app.on_cleanup.insert(0, close)
