"""The video track each viewer's peer connection sends: the encoder's access units as they
are (aiortc never encodes them). Every viewer of a camera gets the feed's one AU, whose RTP
packets rtpsend.py makes once for all."""

from __future__ import annotations

from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamTrack

from titanium.services.webrtc.feed import AccessUnit, EncodedFeed


class EncodedVideoTrack(MediaStreamTrack):
    """Newest frame wins, per viewer: a viewer that falls behind (its sender was slow to
    ask for the next AU) skips ahead, and since a decoder cannot continue after a gap, it
    waits for the next keyframe, asking the encoder for one. It never queues AUs."""

    kind = "video"

    def __init__(self, feed: EncodedFeed, need_keyframe: Callable[[str], None]) -> None:
        super().__init__()
        self.feed = feed
        self.sent = 0
        self.skipped = 0  # AUs this viewer did not get
        self.last_ts_wall = 0.0
        self._need_keyframe = need_keyframe
        self._n = -1
        self._want_key = True

    async def recv(self) -> av.Packet:
        return (await self.next_au()).packet

    async def next_au(self) -> AccessUnit:
        """The next AU to send (rtpsend.py's loop takes it whole, for its RTP packets)."""
        asked = False
        while True:
            au = await self.feed.next_after(self._n)
            if au.n != self._n + 1 and self._n >= 0:
                self.skipped += au.n - self._n - 1
                self._want_key = True
            self._n = au.n
            if self._want_key and not au.keyframe:
                if not asked:  # once per wait; the encoder rate-limits the rest
                    self._need_keyframe("join" if self.sent == 0 else "skip")
                    asked = True
                self.skipped += 1
                continue
            self._want_key = False
            self.sent += 1
            self.last_ts_wall = au.ts_wall
            self.feed.times.taken(au.pts)
            # No await from here to the pack: the packet is still the feed's newest.
            return au
