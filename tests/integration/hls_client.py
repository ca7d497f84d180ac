"""A player's LL-HLS loop over plain HTTP, as hls.js runs it: blocking reloads for the next
part and every new part fetched; for the tests and benchmarks that need many viewers."""

from __future__ import annotations

import re
import time

import aiohttp

PART = re.compile(r'#EXT-X-PART:DURATION=[0-9.]+,URI="part(\d+)\.mp4')


def segments(playlist: str) -> list[int]:
    """The media sequence numbers of the playlist's complete segments."""
    return [int(m) for m in re.findall(r"^seg(\d+)\.mp4", playlist, re.M)]


async def viewer(base: str, seconds: float) -> tuple[int, int]:
    """Plays ``base``/stream.m3u8 for ``seconds``; returns (playlists, parts) fetched."""
    playlists = parts = 0
    got: set[int] = set()
    async with aiohttp.ClientSession() as session:
        end = time.monotonic() + seconds
        query = ""
        while time.monotonic() < end:
            async with session.get(f"{base}/stream.m3u8{query}") as r:
                assert r.status == 200, (r.status, await r.text())
                text = await r.text()
            playlists += 1
            for n in (int(p) for p in PART.findall(text)):
                if n not in got and n >= max(got, default=n):
                    async with session.get(f"{base}/part{n}.mp4") as r:
                        assert r.status == 200, (n, r.status, await r.text())
                        await r.read()
                    got.add(n)
                    parts += 1
            # The next part: the count of parts listed after the last complete segment.
            msn = segments(text)[-1] + 1
            done = text.split(f"seg{msn - 1}.mp4")[-1].count("#EXT-X-PART:")
            query = f"?_HLS_msn={msn}&_HLS_part={done}"
    return playlists, parts
