"""ICE and codec details aiortc leaves to its user: which local addresses to gather on,
H.264 first in every video transceiver, and remote candidates from signalling."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

import aioice
import aioice.ice
from aiortc import RTCIceCandidate, RTCRtpSender, RTCRtpTransceiver
from aiortc.sdp import candidate_from_sdp

from titanium.services.webrtc.checks import candidate_problem

log = logging.getLogger("titanium.webrtc.ice")
LOOPBACK = "127.0.0.1"
_original_host_addresses = aioice.ice.get_host_addresses
_original_server_reflexive = aioice.ice.server_reflexive_candidate
_original_component_candidates = aioice.ice.Connection.get_component_candidates
_original_connect = aioice.ice.Connection.connect
_original_close = aioice.ice.Connection.close
# How long an answer (or our offer) waits for STUN and TURN candidates: a STUN or TURN
# server on the LAN or across the internet answers within a few hundred milliseconds.
GATHER_TIMEOUT = 1.0


def gather_on(addresses: Sequence[str]) -> None:
    """Make aioice gather host candidates on ``addresses``, and never query a STUN server
    from a loopback socket.

    Which addresses, and when loopback is offered:

    - ``addresses`` given (``titanium.webrtc.ice_addresses``): exactly those. Listing
      127.0.0.1 is how a board's own browser (a printer's touch screen) or a test on one
      machine gets a candidate it can use; aioice leaves loopback out by itself.
    - empty: every interface aioice finds, without loopback, because a remote peer can
      never use a 127.0.0.1 candidate. Only a board with no other IPv4 address falls back
      to loopback, so a local screen still connects there. A browser on the board itself
      reaches the LAN address just as well, so nothing is lost elsewhere. Deciding by
      where the signalling came from would not work: behind the printer images' nginx
      every viewer's signalling comes from 127.0.0.1.

    A STUN query sent from a loopback socket to a server off the board fails
    (``[Errno 22] Invalid argument``) and aioice then waits out its whole 5 s gathering
    timeout, so every answer took 5 s once a STUN server was configured. A loopback
    candidate has no server-reflexive address to learn anyway.

    aioice has no option for either: its module functions are replaced, once, for this
    process.
    """
    fixed = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if fixed:
            return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]
        found = _original_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        if use_ipv4 and not any(":" not in a for a in found):
            return [*found, LOOPBACK]
        return found

    async def server_reflexive(
        protocol: aioice.ice.StunProtocol, stun_server: tuple[str, int]
    ) -> tuple[aioice.Candidate, None]:
        if is_loopback(protocol.local_candidate.host):
            # An exception here drops just this task: aioice skips failed queries.
            raise ConnectionError("no STUN query from a loopback address")
        return await _original_server_reflexive(protocol, stun_server)

    aioice.ice.get_host_addresses = host_addresses
    aioice.ice.server_reflexive_candidate = server_reflexive
    log.info(
        "ICE host candidates on %s",
        ", ".join(fixed) or "every interface (loopback only where there is no other)",
    )


def bound_gathering(seconds: float = GATHER_TIMEOUT) -> None:
    """Wait at most ``seconds`` for server-reflexive and relay candidates, keeping those
    that arrived. aioice waits 5 s for them, and with UDP blocked on the way to the STUN
    server (or a dead TURN URL) every answer took those 5 s: the dialects that need a
    complete answer (WHEP's 201, camera-streamer's offer) cannot trickle. Host candidates
    are not delayed by this: they are bound before the wait starts.

    aioice takes the bound as an argument it never passes: the method is replaced, once,
    for this process."""

    async def component_candidates(
        self: aioice.ice.Connection, component: int, addresses: list[str], timeout: float = 5
    ) -> list[aioice.Candidate]:
        return await _original_component_candidates(
            self,
            component,
            addresses,
            min(timeout, seconds),  # type: ignore[arg-type]
        )

    aioice.ice.Connection.get_component_candidates = component_candidates  # type: ignore[method-assign]


# The pace of checks after ICE completed: aioice's own Ta is 20 ms; later checks are few.
RECHECK_INTERVAL = 0.05
_Pair = aioice.ice.CandidatePair


def keep_checking() -> None:
    """Keep running connectivity checks after ICE completed, so that the pair the browser
    switches to is one we check and follow.

    aioice 0.13 stops checking once the first pair is nominated: it cancels the checks in
    flight (their pairs stay "in progress" for good, so a later USE-CANDIDATE on one is
    never acted on) and never checks a remote candidate trickled after that. Through two
    NATs the viewer's srflx candidate often comes after the browser has nominated a relay
    pair (it queues behind the mDNS host candidate, which aioice gives up on after ~1 s),
    so our NAT never opened towards it and P2P could not form; and when the browser
    (controlling) selects another pair later and nominates it, aioice follows only a pair
    it checked itself, and goes on sending on the first one.

    Here the cancelled checks are put back to Waiting and every Waiting or Frozen pair
    is checked, paced, for the connection's life; a pair the peer nominated becomes the
    one we send on when its check succeeds (aioice's check_complete). aioice has no
    option for this: ``connect`` and ``close`` are replaced, once, for this process."""

    async def connect(self: aioice.ice.Connection) -> None:
        await _original_connect(self)
        task = asyncio.create_task(_recheck(self))
        self._titanium_recheck = task  # type: ignore[attr-defined]

    async def close(self: aioice.ice.Connection) -> None:
        task = getattr(self, "_titanium_recheck", None)
        if task is not None:
            task.cancel()
        await _original_close(self)

    aioice.ice.Connection.connect = connect  # type: ignore[method-assign]
    aioice.ice.Connection.close = close  # type: ignore[method-assign]


async def _recheck(conn: aioice.ice.Connection) -> None:
    while not conn._closing:
        started = False
        for pair in conn._check_list:
            task = pair.task
            if pair.state == _Pair.State.IN_PROGRESS and task is not None and task.done():
                pair.task = None
                pair.state = _Pair.State.WAITING
        for pair in conn._check_list:
            if pair.state in (_Pair.State.WAITING, _Pair.State.FROZEN) and pair.task is None:
                conn.check_start_task(pair)
                started = True
                break
        await asyncio.sleep(RECHECK_INTERVAL if started else 4 * RECHECK_INTERVAL)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name (mDNS): not ours to judge
        return False


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
