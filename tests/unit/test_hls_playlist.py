"""The LL-HLS media and multivariant playlists, and the window they describe, written
from a real libx264 clip fed to the segmenter."""

from __future__ import annotations

import random
import re
from functools import cache

from tests.unit.hls_clip import WALL0, Au, clip
from titanium.services.encoder.nal import NAL_SPS, iter_nals, profile_level_id
from titanium.services.mjpeg.hls.playlist import strip_hls_params
from titanium.services.mjpeg.hls.segmenter import Segmenter
from titanium.services.mjpeg.hls.sps import picture_size

QUERY = "token=abc%2Fdef&x=1"


@cache
def ten_seconds() -> list[Au]:
    return clip(300)  # IDRs each second: nine whole segments and one in progress


def fed(aus: list[Au]) -> Segmenter:
    seg = Segmenter()
    for au in aus:
        seg.push(au.data, au.pts, au.keyframe, au.wall)
    return seg


def tag(lines: list[str], name: str) -> list[str]:
    return [line[len(name) + 1 :] for line in lines if line.startswith(name + ":")]


def test_media_playlist_has_the_ll_hls_tags_and_a_bounded_window() -> None:
    """Pins a playlist hls.js cannot run in low-latency mode: without CAN-BLOCK-RELOAD it
    never blocks, without a preload hint it loops; parts are listed for the last two
    segments (and the one in progress) only, seven segments kept as MediaMTX does."""
    seg = fed(ten_seconds())
    text = seg.media_playlist(QUERY)
    assert text is not None
    lines = text.splitlines()
    assert lines[:2] == ["#EXTM3U", "#EXT-X-VERSION:9"]
    assert tag(lines, "#EXT-X-TARGETDURATION") == ["1"]
    (part_inf,) = tag(lines, "#EXT-X-PART-INF")
    part_target = float(part_inf.removeprefix("PART-TARGET="))
    assert 0.2 <= part_target < 0.25
    (control,) = tag(lines, "#EXT-X-SERVER-CONTROL")
    assert control == f"CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={2.5 * part_target:.5f}"
    assert tag(lines, "#EXT-X-MEDIA-SEQUENCE") == ["2"]
    assert tag(lines, "#EXT-X-MAP") == [f'URI="init0.mp4?{QUERY}"']
    extinf = [i for i, line in enumerate(lines) if line.startswith("#EXTINF:")]
    assert len(extinf) == 7 and len(seg.segments) == 7
    assert [lines[i + 1] for i in extinf] == [f"seg{n}.mp4?{QUERY}" for n in range(2, 9)]
    assert all(abs(float(lines[i][8:-1]) - 1.0) < 0.01 for i in extinf)
    # Dates from the capture clock: segment n starts n seconds after the clip's first frame.
    dates = tag(lines, "#EXT-X-PROGRAM-DATE-TIME")
    assert dates[0] == "2026-05-28T20:26:42.000Z" and WALL0 == 1_780_000_000.0
    parts = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-PART:")]
    assert parts and min(parts) > extinf[-3]  # none before the second-last segment
    assert len(parts) == 5 + 5 + 4  # two whole segments, four parts of the open one
    independent = [i for i in parts if lines[i].endswith(",INDEPENDENT=YES")]
    assert len(independent) == 3  # each segment's first part, which starts at its IDR
    assert all(lines[i - 1].startswith("#EXT-X-PROGRAM-DATE-TIME") for i in independent)
    ids = [int(m) for m in re.findall(r'URI="part(\d+)\.mp4', text)]
    (hint,) = tag(lines, "#EXT-X-PRELOAD-HINT")
    assert lines[-1] == f"#EXT-X-PRELOAD-HINT:{hint}"
    assert hint == f'TYPE=PART,URI="part{ids[-2] + 1}.mp4?{QUERY}"'
    assert ids[:-1] == list(range(ids[0], ids[0] + len(parts)))


def test_the_query_reaches_every_uri_and_cannot_break_a_line() -> None:
    """Pins segment URIs that lose the token (they resolve relative to the playlist) and a
    query that ends an attribute or a line of the playlist."""
    seg = fed(ten_seconds()[:100])
    text = seg.media_playlist(QUERY)
    assert text is not None
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    uris += re.findall(r'URI="([^"]*)"', text)
    assert len(uris) > 10 and all(u.endswith(f".mp4?{QUERY}") for u in uris)
    assert strip_hls_params(f"_HLS_msn=4&{QUERY}&_HLS_part=2&_HLS_skip=YES") == QUERY
    hostile = seg.media_playlist('t=a"b\n#EXT-X-ENDLIST')
    assert hostile is not None and "ENDLIST" not in hostile.replace("%23EXT-X-ENDLIST", "")
    assert hostile.count('"') == text.count('"')
    multi = seg.multivariant_playlist(QUERY)
    assert multi is not None and multi.splitlines()[-1] == f"stream.m3u8?{QUERY}"


def test_multivariant_playlist_names_codec_size_and_bandwidth() -> None:
    """Pins a multivariant playlist hls.js or Safari cannot pick a decoder from."""
    aus = ten_seconds()
    sps = next(aus[0].data[s:e] for t, s, e in iter_nals(aus[0].data) if t == NAL_SPS)
    multi = fed(aus).multivariant_playlist()
    assert multi is not None
    (inf,) = [line for line in multi.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    m = re.fullmatch(r'#EXT-X-STREAM-INF:BANDWIDTH=(\d+),CODECS="([^"]+)",RESOLUTION=(\S+)', inf)
    assert m is not None
    assert m.group(2) == f"avc1.{profile_level_id(sps)}" == "avc1.42c01f"
    assert m.group(3) == "320x240"
    assert 100_000 < int(m.group(1)) < 5_000_000  # a 500 kbit/s clip, peak of its segments


def test_lookups_serve_the_window_and_nothing_else() -> None:
    """Pins segments kept without bound, or expired ones still served."""
    seg = fed(ten_seconds())
    assert seg.get("init0.mp4") == seg.init and seg.init[4:12] == b"ftypiso5"
    assert seg.get("seg1.mp4") is None and seg.get("seg9.mp4") is None
    seg2 = seg.get("seg2.mp4")
    assert seg2 is not None and seg2 == b"".join(p.data for p in seg.segments[0].parts)
    first = seg.segments[0].parts[0]
    assert seg.get(f"part{first.id}.mp4") == first.data
    assert seg.get(f"part{first.id - 1}.mp4") is None
    assert seg.get(f"part{seg.next_part_id}.mp4") is None
    assert seg.get("init1.mp4") is None and seg.get("../seg2.mp4") is None
    assert seg.get("seg2.mp4x") is None


def test_nothing_to_serve_before_the_first_segment() -> None:
    seg = fed(ten_seconds()[:20])
    assert seg.media_playlist() is None and seg.multivariant_playlist() is None


def test_picture_size_from_the_sps_with_cropping() -> None:
    """Pins a size read without frame cropping: 180 lines are coded as 192."""
    for size in [(320, 180), (640, 480), (1280, 720), (1920, 1080)]:
        au = clip(1, size=size)[0].data
        sps = next(au[s:e] for t, s, e in iter_nals(au) if t == NAL_SPS)
        assert picture_size(sps) == size


def test_segments_stretch_to_the_next_idr() -> None:
    """Pins segments cut at one second whatever the keyframes: a segment that does not
    start at an IDR cannot be played from its start (MediaMTX stretches to the next IDR)."""
    aus = clip(200, keyframe_interval=1.5)  # IDRs at frames 0, 45, 90, 135, 180
    text = fed(aus).media_playlist()
    assert text is not None
    lines = text.splitlines()
    assert tag(lines, "#EXT-X-TARGETDURATION") == ["2"]
    assert [round(float(d[:-1]), 3) for d in tag(lines, "#EXTINF")] == [1.5] * 4
    firsts = [lines[i + 1] for i, line in enumerate(lines) if line.startswith("#EXT-X-PROGRAM")]
    # Four whole segments and the open one; parts listed for the last three.
    assert len(firsts) == 5 and all(f.endswith(",INDEPENDENT=YES") for f in firsts[2:])


def test_part_target_covers_every_part_of_a_jittery_camera_and_never_shrinks() -> None:
    """Pins a PART-TARGET shorter than the parts (capture times jitter by a few ms) or one
    that moves down as the window slides (the spec forbids a change; iOS stalls), and
    segments a few ms short of one second stretched on to the next IDR (2 s instead of 1)."""
    rng = random.Random(13)
    seg = Segmenter(segment_count=3)
    targets = []
    for i, au in enumerate(ten_seconds()):
        jitter = rng.randint(-450, 450)  # ±5 ms
        stall = 22_500 if i >= 20 else 0  # capture stalled 250 ms once, early on
        seg.push(au.data, au.pts + jitter + stall, au.keyframe, au.wall)
        text = seg.media_playlist()
        if text is None:
            continue
        (inf,) = tag(text.splitlines(), "#EXT-X-PART-INF")
        targets.append(float(inf.removeprefix("PART-TARGET=")))
        durations = [float(d) for d in re.findall(r"#EXT-X-PART:DURATION=([\d.]+)", text)]
        assert durations and max(durations) <= targets[-1]
    # The stalled part left the window long ago; the target it raised stays.
    assert seg.segments[0].msn > 0
    assert targets == sorted(targets) and 0.25 < targets[-1] < 0.5
    # Segments still end at the IDR nearest one second, not the one after.
    assert all(abs(s.seconds - 1) < 0.05 for s in list(seg.segments))


def test_a_new_sps_starts_a_new_init_and_window() -> None:
    """Pins old segments served with a new init (the encoder reopened at a new size):
    they cannot decode with it, so the window starts again under init1.mp4, numbering on."""
    seg = fed(ten_seconds()[:100])
    last_msn = seg.next_msn
    after = ten_seconds()[99].pts + 3000
    small = clip(70, size=(160, 120))
    for au in small:
        seg.push(au.data, after + au.pts - small[0].pts, au.keyframe, au.wall + 4)
    text = seg.media_playlist("t=1")
    assert text is not None
    lines = text.splitlines()
    assert tag(lines, "#EXT-X-MAP") == ['URI="init1.mp4?t=1"']
    assert tag(lines, "#EXT-X-MEDIA-SEQUENCE") == [str(last_msn)]
    assert seg.get("init0.mp4") is None and seg.get("seg0.mp4") is None
    init = seg.get("init1.mp4")
    assert (
        init is not None and (160 << 16).to_bytes(4, "big") + (120 << 16).to_bytes(4, "big") in init
    )
    multi = seg.multivariant_playlist()
    assert multi is not None and "RESOLUTION=160x120" in multi
