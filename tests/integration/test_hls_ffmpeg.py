"""The LL-HLS muxer's output read by Debian's ffmpeg/ffprobe: the fMP4 it writes decodes
without a complaint, at the pts it was fed, and the playlist plays as HLS."""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path

from tests.unit.hls_clip import Au, clip
from titanium.services.mjpeg.hls.segmenter import Segmenter


@cache
def three_seconds() -> list[Au]:
    return clip(95)  # IDRs at 0, 30, 60, 90: three whole segments and a started one


@cache
def ten_seconds() -> list[Au]:
    return clip(300)


def fed(aus: list[Au], **kw: int) -> Segmenter:
    seg = Segmenter(**kw)
    for au in aus:
        seg.push(au.data, au.pts, au.keyframe, au.wall)
    return seg


def ffprobe(path: Path, entries: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-count_frames", "-show_entries", entries, path],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def test_init_and_all_parts_decode_cleanly_at_the_fed_pts(tmp_path: Path) -> None:
    """Pins a muxer whose boxes ffmpeg rejects or misreads (avcC, trun offsets, tfdt,
    Annex-B left in samples, sync flags): every muxed AU decodes, at its own pts, with
    ffmpeg printing nothing at -v error."""
    aus = three_seconds()
    seg = fed(aus, segment_count=10)
    parts = [p for s in [*seg.segments, seg.current] if s for p in s.parts]
    muxed = sum(len(_samples_of(p.data)) for p in parts)
    path = tmp_path / "all.mp4"
    path.write_bytes(seg.init + b"".join(p.data for p in parts))
    errors = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert errors.returncode == 0 and errors.stderr == ""
    info = ffprobe(path, "stream=codec_name,width,height,nb_read_frames,time_base")
    (stream,) = info["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 320, 240)
    assert stream["time_base"] == "1/90000"
    assert int(stream["nb_read_frames"]) == muxed >= 90
    packets = ffprobe(path, "packet=pts,dts")["packets"]
    pts = [int(p["pts"]) for p in packets]
    assert pts == [au.pts for au in aus[:muxed]]
    assert [int(p["dts"]) for p in packets] == pts  # no B-frames: decode order is display order
    # The demuxer's own reading of trun (packet flags come from the H.264 parser instead).
    trace = subprocess.run(
        ["ffprobe", "-v", "trace", path], capture_output=True, text=True, timeout=60
    ).stderr
    index = re.findall(r"AVIndex stream 0, sample \d+, .*, dts (\d+), .* keyframe (\d)", trace)
    assert index == [(str(au.pts), str(int(au.keyframe))) for au in aus[:muxed]]
    # Samples are length-prefixed NAL units: ffmpeg's bitstream reader walks every one
    # (its decoder alone would also take Annex-B left in an mp4).
    copy = ["-c:v", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"]
    walked = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", path, *copy],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert walked.returncode == 0 and walked.stderr == ""


def _samples_of(fragment: bytes) -> range:
    # trun's sample_count sits right after its full-box header.
    at = fragment.index(b"trun") + 8
    return range(int.from_bytes(fragment[at : at + 4], "big"))


def test_the_written_playlist_plays_in_ffmpeg(tmp_path: Path) -> None:
    """Pins a playlist ffmpeg's HLS demuxer cannot follow (MAP, segment URIs, EXTINF):
    played from the start of the window, it decodes exactly the frames of the listed
    segments, the seven newest of ten seconds."""
    seg = fed(ten_seconds())
    playlist = seg.media_playlist()
    assert playlist is not None
    (tmp_path / "stream.m3u8").write_text(playlist)
    names = [line.split("?")[0] for line in playlist.splitlines() if line.startswith("seg")]
    assert names == [f"seg{msn}.mp4" for msn in range(2, 9)]
    for name in ["init0.mp4", *names]:
        data = seg.get(name)
        assert data is not None
        (tmp_path / name).write_bytes(data)
    cmd = ["ffmpeg", "-v", "error", "-live_start_index", "0", "-m3u8_hold_counters", "1"]
    out = subprocess.run(
        [*cmd, "-i", tmp_path / "stream.m3u8", "-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stderr == ""
    frames = [line for line in out.stdout.splitlines() if not line.startswith("#")]
    assert len(frames) == 7 * 30
