"""A fragmented MP4 (ISO BMFF, ISO/IEC 14496-12 and -15) writer for one H.264 video track:
the init segment (ftyp+moov) and one moof+mdat fragment per LL-HLS part.

Our AUs have no B-frames (the encoder backends open with none), so decode and presentation
times are equal and trun carries no composition offsets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from titanium.common.h264 import NAL_AUD, NAL_PPS, NAL_SEI, NAL_SPS, iter_nals

TIMESCALE = 90_000  # the 90 kHz clock our AU pts are on
TRACK_ID = 1
# Not sample data in fMP4: parameter sets live in avcC, AUD/SEI only confuse some players
# (and MSE decoders reject an SPS that differs from avcC mid-fragment).
DROPPED_NALS = frozenset({NAL_AUD, NAL_SEI, NAL_SPS, NAL_PPS})
# Sample flags (14496-12 8.8.3.1): sample_depends_on=2 (an I picture); non-sync samples
# depend on others (1) and set sample_is_non_sync_sample.
SYNC_FLAGS = 0x02000000
NON_SYNC_FLAGS = 0x01010000
# tfhd: default-base-is-moof, so trun's data offset counts from this fragment's moof (what
# MSE and CMAF require; no base_data_offset needed).
TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
# trun: data-offset, sample-duration, sample-size and sample-flags present.
TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400
UNITY_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


@dataclass(frozen=True)
class Sample:
    """One access unit as an fMP4 sample: AVCC data, decode time and duration in 90 kHz."""

    data: bytes
    dts: int
    duration: int
    keyframe: bool


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def avcc_sample(au: bytes) -> bytes:
    """An Annex-B access unit as 4-byte length-prefixed NAL units, less AUD/SEI/SPS/PPS."""
    out = []
    for nal_type, start, end in iter_nals(au):
        if nal_type in DROPPED_NALS or end <= start:
            continue
        out.append(struct.pack(">I", end - start))
        out.append(au[start:end])
    return b"".join(out)


def _avcc_box(sps: bytes, pps: bytes) -> bytes:
    return box(
        b"avcC",
        bytes((1, sps[1], sps[2], sps[3], 0xFC | 3, 0xE0 | 1)),  # 4-byte NAL lengths, 1 SPS
        struct.pack(">H", len(sps)),
        sps,
        bytes((1,)),
        struct.pack(">H", len(pps)),
        pps,
    )


def _avc1_box(sps: bytes, pps: bytes, width: int, height: int) -> bytes:
    return box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),  # data_reference_index
        bytes(16),  # pre_defined, reserved
        struct.pack(">HH", width, height),
        struct.pack(">II", 0x00480000, 0x00480000),  # 72 dpi
        bytes(4),
        struct.pack(">H", 1),  # frame_count
        bytes(32),  # compressorname
        struct.pack(">Hh", 0x0018, -1),  # depth, pre_defined
        _avcc_box(sps, pps),
    )


def init_segment(sps: bytes, pps: bytes, width: int, height: int) -> bytes:
    """ftyp+moov for one avc1 track at 90 kHz, with mvex/trex so fragments may follow.
    ``sps``/``pps`` are NAL units from their header byte (no start code)."""
    ftyp = box(b"ftyp", b"iso5", struct.pack(">I", 512), b"iso5iso6mp41")
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, 1000, 0),  # times, timescale, duration
        struct.pack(">IH", 0x00010000, 0x0100),  # rate, volume
        bytes(10),
        UNITY_MATRIX,
        bytes(24),
        struct.pack(">I", TRACK_ID + 1),  # next_track_ID
    )
    tkhd = full_box(
        b"tkhd",
        0,
        3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, TRACK_ID, 0, 0),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0, 0),  # layer, alternate group, volume, reserved
        UNITY_MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = full_box(
        b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, 0, 0x55C4, 0)
    )  # language 'und'
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00")
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), _avc1_box(sps, pps, width, height)),
        full_box(b"stts", 0, 0, bytes(4)),
        full_box(b"stsc", 0, 0, bytes(4)),
        full_box(b"stsz", 0, 0, bytes(8)),
        full_box(b"stco", 0, 0, bytes(4)),
    )
    minf = box(b"minf", vmhd, dinf, stbl)
    trak = box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))
    trex = full_box(b"trex", 0, 0, struct.pack(">IIIII", TRACK_ID, 1, 0, 0, 0))
    return ftyp + box(b"moov", mvhd, trak, box(b"mvex", trex))


def fragment(seq: int, samples: list[Sample]) -> bytes:
    """moof+mdat with ``samples`` in order; tfdt is the first sample's decode time.
    ``seq`` is the moof sequence number (mfhd), increasing from 1 across the stream."""
    if not samples:
        raise ValueError("a fragment needs at least one sample")
    entries = b"".join(
        struct.pack(">III", s.duration, len(s.data), SYNC_FLAGS if s.keyframe else NON_SYNC_FLAGS)
        for s in samples
    )
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", seq))
    tfhd = full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", TRACK_ID))
    tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", samples[0].dts))

    def moof(data_offset: int) -> bytes:
        trun = full_box(
            b"trun", 0, TRUN_FLAGS, struct.pack(">Ii", len(samples), data_offset), entries
        )
        return box(b"moof", mfhd, box(b"traf", tfhd, tfdt, trun))

    size = len(moof(0))  # the offset field has a fixed width: the size does not depend on it
    mdat = box(b"mdat", *(s.data for s in samples))
    return moof(size + 8) + mdat
