"""H.264 Annex B access units: find NAL units, tell IDRs, and keep SPS/PPS in front of
every IDR whatever the backend gives (a viewer can only start decoding at an IDR that
carries them, and browsers join mid-stream)."""

from __future__ import annotations

from titanium.common.h264 import NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS, iter_nals


def head_types(au: bytes) -> list[int]:
    """NAL types up to and including the first slice: enough to classify an AU without
    walking the slice data of a large IDR."""
    types = []
    for nal_type, _, _ in iter_nals(au):
        types.append(nal_type)
        if nal_type in (NAL_SLICE, NAL_IDR):
            break
    return types


def is_idr(au: bytes) -> bool:
    return NAL_IDR in head_types(au)


def profile_level_id(sps: bytes) -> str:
    """The SDP profile-level-id (hex of profile_idc, constraint flags, level_idc) of an SPS
    NAL unit given from its header byte: what aiortc and browsers negotiate on."""
    return sps[1:4].hex()


class ParameterSets:
    """Remembers the latest SPS and PPS seen and puts them in front of an IDR that lacks
    them: cameras (passthrough) and hardware encoders often send them only once, or only
    in the codec's extradata."""

    def __init__(self) -> None:
        self.sps = b""
        self.pps = b""

    def observe(self, data: bytes) -> list[int]:
        """Learn SPS/PPS from an AU or from codec extradata in Annex B form; returns the
        NAL types up to and including the first slice."""
        types = []
        for nal_type, start, end in iter_nals(data):
            types.append(nal_type)
            if nal_type == NAL_SPS:
                self.sps = data[start:end]
            elif nal_type == NAL_PPS:
                self.pps = data[start:end]
            elif nal_type in (NAL_SLICE, NAL_IDR):
                break
        return types

    def complete(self, au: bytes) -> tuple[bytes, bool]:
        """(``au`` with SPS/PPS in front when it is an IDR without them, keyframe)."""
        types = self.observe(au)
        if NAL_IDR not in types:
            return au, False
        if NAL_SPS in types and NAL_PPS in types:
            return au, True
        if not (self.sps and self.pps):
            return au, True  # nothing learnt yet: the decoder may still have them
        return b"".join((b"\x00\x00\x00\x01", self.sps, b"\x00\x00\x00\x01", self.pps, au)), True
