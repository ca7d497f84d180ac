"""A remote link is a narrow one (issue 11): a remote viewer in a network namespace of this
module's, joined to the stack's (root) namespace by a veth pair shaped with tbf and nft loss
(tests/integration/shaping.py; no netem on this kernel, so no added delay), signalling as the
Mirage relay does (the webrtc service's ``offer`` with dialect ``mirage``, over its RPC
socket, which is a file and so reachable from any namespace); its video crosses the shaped
veth. A LAN viewer plays over loopback through the front door's WHEP."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import zmq.asyncio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tests.integration import shaping
from tests.integration.conftest import Stack
from tests.integration.nat import _host_networks, missing_prerequisite
from tests.integration.nat_services import NetnsLoop
from tests.integration.renack import keep_nacking
from tests.integration.rtc_client import Received, _consume, whep_view
from titanium.common.endpoints import Endpoints
from titanium.common.rpc import RpcClient

CAMERA_BPS = 2_000_000  # the camera's configured bitrate (the default "2000k")
FLOOR_BPS = CAMERA_BPS // 2  # streaming.remote_bitrate_floor: 50 % by default
FOLLOW_BOUND = 5.0  # the issue's: the bitrate follows the viewer's feedback within 5 s


class RemoteLink:
    """A namespace ``ns`` holding the viewer (``viewer_ip``), its ``eth0`` paired with
    ``dev`` in the root namespace (``local_ip``, which the stack offers as a candidate)."""

    def __init__(self) -> None:
        tag = os.getpid()
        self.ns = f"ti-rl-{tag}"
        self.dev = f"trl{tag % 100000}"
        subnet = _free_slash30()
        self.local_ip, self.viewer_ip = (str(a) for a in subnet.hosts())
        self._created = False
        for cmd in (
            ["ip", "netns", "add", self.ns],
            ["ip", "link", "add", self.dev, "type", "veth", "peer", "name", "eth0", "netns",
             self.ns],
            ["ip", "addr", "add", f"{self.local_ip}/30", "dev", self.dev],
            ["ip", "link", "set", self.dev, "up"],
            ["ip", "-n", self.ns, "addr", "add", f"{self.viewer_ip}/30", "dev", "eth0"],
            ["ip", "-n", self.ns, "link", "set", "eth0", "up"],
            ["ip", "-n", self.ns, "link", "set", "lo", "up"],
        ):  # fmt: skip
            subprocess.run(cmd, check=True, capture_output=True)
            self._created = True
        self.loop = NetnsLoop(self.ns)

    def shape(self, rate: str, loss_pct: float) -> None:
        """Both directions capped at ``rate``, ``loss_pct`` % lost each way (at the viewer)."""
        shaping.rate(None, self.dev, rate)  # the root end's egress: the video
        shaping.rate(self.ns, "eth0", rate)  # the viewer's uplink: its RTCP
        shaping.loss(self.ns, "eth0", loss_pct, ["input", "output"])

    def close(self) -> None:
        self.loop.close()
        if self._created:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
            subprocess.run(["ip", "link", "del", self.dev], capture_output=True)


def _free_slash30() -> ipaddress.IPv4Network:
    host = _host_networks()
    for i in range(64):
        n = (os.getpid() + i) % 64
        net = ipaddress.IPv4Network(f"10.233.{n}.0/30")
        if not any(net.overlaps(h) for h in host):
            return net
    raise AssertionError("every 10.233.N.0/30 overlaps a host route")


@pytest.fixture
def link() -> Iterator[RemoteLink]:
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    remote = RemoteLink()
    try:
        yield remote
    finally:
        remote.close()


async def remote_view(endpoint: str, seconds: float, timecode: bool) -> Received:
    """What the Mirage relay does for a remote viewer, the viewer being an aiortc peer in
    the calling loop's namespace: offer (dialect mirage), play ``seconds`` (asking again
    for lost packets as a browser does, renack.py), close."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    pc.on("track", lambda t: tracks.put_nowait(t))
    await pc.setLocalDescription(await pc.createOffer())
    ctx = zmq.asyncio.Context()
    rpc = RpcClient(ctx, endpoint)
    got = Received()
    try:
        reply = await rpc.call(
            "offer", camera="cam0", sdp=pc.localDescription.sdp, dialect="mirage"
        )
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        track = await asyncio.wait_for(tracks.get(), 10)
        async with keep_nacking(pc):
            await _consume(track, got, seconds, timecode)
        await rpc.call("close", session=reply["session"])
    finally:
        rpc.close()
        ctx.term()
        await pc.close()
    return got


def _stack(make_stack: Callable[..., Stack], link: RemoteLink) -> Stack:
    return make_stack(webrtc={"ice_addresses": ["127.0.0.1", link.local_ip]})


def _sample_bitrate(
    stack: Stack, until: Callable[[], bool], lan_hints: list[tuple[float, int]] | None = None
) -> list[tuple[float, int]]:
    """The encoder's bitrate (wall clock, bit/s) every 0.2 s while it encodes, until
    ``until()``; with ``lan_hints``, the LAN viewers' latest hints are appended to it."""
    samples = []
    loop = asyncio.new_event_loop()
    ctx = zmq.asyncio.Context()
    rpc = RpcClient(ctx, Endpoints(stack.runtime_dir).webrtc_rpc())
    try:
        while not until():
            encoder: dict[str, Any] | None = stack.camera()["encoder"]
            if encoder and encoder["active"]:
                samples.append((time.time(), int(encoder["bitrate"])))
            if lan_hints is not None:
                status = loop.run_until_complete(rpc.call("status"))
                for s in status["sessions"]:
                    if not s["remote"] and s["bitrate_hint"] is not None:
                        lan_hints.append((time.time(), int(s["bitrate_hint"])))
            time.sleep(0.2)
    finally:
        rpc.close()
        ctx.term()
        loop.close()
    return samples


@dataclass
class NarrowView:
    got: Received
    samples: list[tuple[float, int]]  # the encoder's bitrate meanwhile
    queue: shaping.QueueCount  # what the link's queue towards the viewer sent and dropped


def _narrow_view(make_stack: Callable[..., Stack], link: RemoteLink) -> NarrowView:
    """14 s of a remote viewer on a link of 1 Mbit/s and 1 % loss each way (the issue's
    netem figures but the 80 ms RTT: tbf and nft cannot delay), timecodes read, the
    encoder's bitrate meanwhile, and what the link's queue towards the viewer did."""
    stack = _stack(make_stack, link)
    link.shape("1mbit", 1)
    endpoint = Endpoints(stack.runtime_dir).webrtc_rpc()
    viewing = link.loop.submit(remote_view(endpoint, 14.0, timecode=True), 40)
    samples = _sample_bitrate(stack, viewing.done)
    return NarrowView(viewing.result(), samples, shaping.queue_count(None, link.dev))


def test_a_narrow_lossy_link_brings_the_bitrate_down_and_frames_keep_flowing(
    make_stack: Callable[..., Stack], link: RemoteLink
) -> None:
    """Over the narrow link, the viewer's feedback brings the encoder's 2 Mbit/s down
    within 5 s of the first frame, and frames keep coming to the end. Pins the remote link:
    a viewer whose feedback never reached the encoder across it fails here, as does a
    harness whose shaping does nothing (the encoder would stay at 2 Mbit/s)."""
    view = _narrow_view(make_stack, link)
    got, samples = view.got, view.samples
    assert got.frames >= 60, f"{got.frames} frames in 14 s over the narrow link"
    first, last = got.frame_times[0], got.frame_times[-1]
    assert last - first >= 10, f"frames stopped {first + 14 - last:.1f} s before the end"
    lowered = [t for t, bps in samples if bps < CAMERA_BPS * 0.9]
    assert lowered, f"the encoder never went below {CAMERA_BPS} bit/s: {samples}"
    assert lowered[0] - first <= FOLLOW_BOUND, (
        f"the bitrate followed {lowered[0] - first:.1f} s after the first frame: {samples}"
    )


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_a_narrow_lossy_link_keeps_latency_bounded(
    make_stack: Callable[..., Stack], link: RemoteLink
) -> None:
    """Over the narrow link, the sender does not overflow the link's queue, and the
    capture-to-viewer latency of the last 5 s stays under 1 s (p95) while frames keep
    coming. Pins the remote viewer's pacing (services/webrtc/backlog.py): unpaced, aiortc's
    sender never waits, and the link's 100 ms queue dropped 1,447 and 5,834 packets in two
    runs (paced: 0), and the viewer's latency reached 5-7 s within 14 s."""
    view = _narrow_view(make_stack, link)
    got = view.got
    # A keyframe's burst may overflow now and then; unpaced, drops outnumbered packets sent.
    assert view.queue.dropped <= view.queue.sent // 50, (
        f"the link's queue dropped {view.queue.dropped} of {view.queue.sent} packets"
    )
    last = got.frame_times[-1]
    late = [ms for t, ms in zip(got.latency_times, got.latencies_ms, strict=True) if t > last - 5]
    assert len(late) >= 25, f"{len(late)} timecoded frames in the last 5 s: frames stalled"
    # Generous for a loaded 2-core machine; the unpaced sender's reached 5-7 s.
    p50, p95 = _p(late, 0.5), _p(late, 0.95)
    assert p95 < 1000, f"latency of the last 5 s: p50 {p50:.0f} ms, p95 {p95:.0f} ms"


def test_a_lan_viewer_keeps_its_frame_rate_while_the_remote_one_is_paced(
    make_stack: Callable[..., Stack], link: RemoteLink
) -> None:
    """A LAN viewer (WHEP over loopback) and a remote viewer on the 1 Mbit/s link watch the
    same camera: the remote viewer's sender waits for its link (the status's ``paced``
    counts it), the LAN viewer's does not, and the LAN viewer keeps a normal frame rate.
    Pins that pacing is per viewer: a pacer on a shared path (the feed, the encoder) would
    thin the LAN viewer too, and one missing leaves ``paced`` at 0."""
    stack = _stack(make_stack, link)
    link.shape("1mbit", 1)
    endpoint = Endpoints(stack.runtime_dir).webrtc_rpc()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        remote = link.loop.submit(remote_view(endpoint, 12.0, timecode=False), 40)
        lan = pool.submit(asyncio.run, whep_view(stack.base, 10.0))
        paced: dict[bool, int] = {}
        loop = asyncio.new_event_loop()
        ctx = zmq.asyncio.Context()
        rpc = RpcClient(ctx, endpoint)
        try:
            while not lan.done():
                for s in loop.run_until_complete(rpc.call("status"))["sessions"]:
                    paced[s["remote"]] = max(paced.get(s["remote"], 0), s.get("paced", 0))
                time.sleep(0.3)
        finally:
            rpc.close()
            ctx.term()
            loop.close()
        lan_got = lan.result()
        remote_got = remote.result()
    assert remote_got.frames > 0, "the remote viewer got no video"
    assert paced.get(True, 0) > 0, f"the remote viewer's sender never waited: {paced}"
    assert paced.get(False, 0) == 0, f"the LAN viewer's sender waited: {paced}"
    lan_fps = (lan_got.frames - 1) / (lan_got.frame_times[-1] - lan_got.frame_times[0])
    assert lan_fps >= 20, f"the LAN viewer got {lan_fps:.1f} frames/s beside the remote one"


def test_b_a_slow_remote_viewer_cannot_drag_a_lan_viewer_below_the_floor(
    make_stack: Callable[..., Stack], link: RemoteLink
) -> None:
    """A LAN viewer (WHEP over loopback) and a remote viewer on a 500 kbit/s link watch the
    same camera: while both watch, the shared bitrate stays at or above the floor (half the
    camera's 2 Mbit/s) however low the remote viewer's hints go, and the LAN viewer gets
    its frames at a normal rate; once the LAN viewer leaves, the remote viewer's hints pull
    the bitrate below the floor. Pins the policy of docs/mirage.md "A slow remote viewer":
    before it, the lowest hint won for everyone and the LAN viewer's picture dropped to
    what the remote link carried."""
    stack = _stack(make_stack, link)
    link.shape("500kbit", 0)
    endpoint = Endpoints(stack.runtime_dir).webrtc_rpc()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        lan = pool.submit(asyncio.run, whep_view(stack.base, 14.0))
        remote = link.loop.submit(remote_view(endpoint, 28.0, timecode=False), 50)
        lan_hints: list[tuple[float, int]] = []
        both = _sample_bitrate(stack, lan.done, lan_hints)
        lan_got = lan.result()
    alone = _sample_bitrate(stack, remote.done)
    remote_got = remote.result()

    assert remote_got.frames > 0, "the remote viewer got no video"
    lan_start, lan_end = lan_got.frame_times[0], lan_got.frame_times[-1]
    settled = [(t, bps) for t, bps in both if lan_start + 2 <= t <= lan_end]
    assert settled, f"no encoder samples while both watched: {both}"
    for t, bps in settled:
        # The LAN viewer's own hints count in full (a loaded machine can make its
        # estimator dip): the floor is what the remote viewer alone cannot go under. The
        # encoder follows the lowest hint of 5 s, the manager's of 5 s before that.
        lan_low = min((b for h, b in lan_hints if t - 10.5 <= h <= t), default=CAMERA_BPS)
        assert bps >= min(FLOOR_BPS, lan_low), (
            f"the remote viewer pulled the LAN viewer's bitrate to {bps} (floor {FLOOR_BPS}, "
            f"LAN hints {lan_low}): {settled}"
        )
    fps = (lan_got.frames - 1) / (lan_end - lan_start)
    assert fps >= 15, f"the LAN viewer got {fps:.1f} frames/s beside the remote viewer"
    assert alone and min(bps for _, bps in alone) < FLOOR_BPS, (
        f"alone, the remote viewer's hints never took the bitrate below the floor: {alone}"
    )
