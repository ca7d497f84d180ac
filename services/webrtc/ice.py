"""ICE and codec details aiortc leaves to its user: which local addresses to gather on,
H.264 first in every video transceiver, and remote candidates from signalling."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import aioice.ice
from aiortc import RTCIceCandidate, RTCRtpSender, RTCRtpTransceiver
from aiortc.sdp import candidate_from_sdp

from titanium.services.webrtc.checks import candidate_problem

log = logging.getLogger("titanium.webrtc.ice")
LOOPBACK = "127.0.0.1"
_original_host_addresses = aioice.ice.get_host_addresses


def gather_on(addresses: Sequence[str]) -> None:
    """Make aioice gather host candidates on ``addresses`` (empty: every interface, plus
    loopback).

    aioice leaves 127.0.0.1 out, so a browser on the board itself (a printer's touch
    screen) or a test on one machine could never connect. Setting explicit addresses also
    keeps a test's ICE traffic on loopback. aioice has no option for this: its module
    function is replaced, once, for this process.
    """
    fixed = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if fixed:
            return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]
        found = _original_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        return [*found, LOOPBACK] if use_ipv4 else found

    aioice.ice.get_host_addresses = host_addresses
    log.info("ICE host candidates on %s", ", ".join(fixed) or "every interface and loopback")


def prefer_h264(transceiver: RTCRtpTransceiver) -> None:
    """H.264 only, constrained baseline first. Must run before the remote description is
    applied: afterwards aiortc keeps VP8 and would label our H.264 packets as VP8."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    h264 = [c for c in codecs if c.mimeType == "video/H264"]
    h264.sort(key=lambda c: c.parameters.get("profile-level-id") != "42e01f")
    transceiver.setCodecPreferences(h264)


def parse_candidates(items: Any, loopback_only: bool) -> list[RTCIceCandidate]:
    """Remote candidates from signalling: ``[{candidate, sdpMid, sdpMLineIndex}]`` (the
    browser's RTCIceCandidateInit). An empty candidate (end of candidates) is skipped, and
    so are mDNS ``.local`` host names when we only gather on loopback: resolving them
    would query the LAN, and no loopback peer could reach them anyway."""
    if not isinstance(items, list):
        raise ValueError("candidates must be a list")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("candidate", ""), str):
            raise ValueError("each candidate is {candidate, sdpMid, sdpMLineIndex}")
        text = item.get("candidate") or ""
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        if not text.strip():
            continue
        problem = candidate_problem(text)
        if problem:
            raise ValueError(f"candidate: {problem}")
        cand = candidate_from_sdp(text)
        if loopback_only and cand.ip.endswith(".local"):
            continue
        mid, index = item.get("sdpMid"), item.get("sdpMLineIndex")
        cand.sdpMid = mid if isinstance(mid, str) else None
        ok_index = isinstance(index, int) and not isinstance(index, bool) and index >= 0
        # Neither (go2rtc-style bare candidates): the first m-line, which is the bundled
        # one. aiortc would refuse it only when the answer came, failing the session.
        cand.sdpMLineIndex = index if ok_index else (0 if cand.sdpMid is None else None)
        out.append(cand)
    return out


def strip_mdns_candidates(sdp: str) -> str:
    """``sdp`` without candidates whose address is an mDNS ``.local`` name (see
    :func:`parse_candidates` for why, when gathering on loopback only)."""
    keep = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) > 4 and parts[4].endswith(".local"):
                continue
        keep.append(line)
    return "\r\n".join(keep) + "\r\n"
