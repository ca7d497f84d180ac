"""The jmuxer dialect (services/mjpeg/jmuxer.py) on a real stack: what Mainsail's
JMuxerStream player is sent over ``/jmuxer``, byte by byte (PROTOCOLS.md "More dialects /
jmuxer"), what a client that never reads costs the others, and the encoder's demand."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import av
import pytest

from tests.integration import netns as namespaces
from tests.integration.conftest import Stack
from tests.integration.governor_client import call
from tests.integration.rtc_client import HeldPeer
from tests.integration.test_governor import quiet_board
from titanium.common.endpoints import Endpoints
from titanium.services.mjpeg.jmuxer import BEHIND_BYTES

FPS = 15
AUD = b"\x00\x00\x00\x01\x09\xf0"
WARM, WINDOW = 3 * FPS, 5 * FPS  # AUs the reading client takes before and while measured
SMALL_TCP_BUFFERS = "net.ipv4.tcp_wmem=4096 16384 65536"
CAMERA = {"device": "testpattern", "resolution": "640x480", "fps": FPS, "keyframe_interval": 2}


def nal_types(data: bytes) -> list[int]:
    """NAL types in order (every start code is 4 bytes in this dialect)."""
    parts = data.split(b"\x00\x00\x00\x01")
    assert parts[0] == b"", f"does not start with a start code: {data[:8].hex()}"
    return [p[0] & 0x1F for p in parts[1:] if p]


async def receive(
    url: str, count: int, timeout: float = 15, each: Callable[[int], None] = lambda n: None
) -> tuple[list[bytes], list[float]]:
    """The first ``count`` binary messages of a jmuxer socket and when each came;
    ``each(n)`` is called after the n-th."""
    msgs: list[bytes] = []
    times: list[float] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=2)) as ws,
    ):
        async with asyncio.timeout(timeout):
            async for msg in ws:
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                msgs.append(msg.data)
                times.append(time.monotonic())
                each(len(msgs))
                if len(msgs) == count:
                    break
    return msgs, times


def test_each_client_starts_at_sps_pps_idr_and_every_au_ends_with_two_auds(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins the dialect's bytes: the first message is SPS, PPS, IDR (jmuxer drops anything
    before SPS/PPS); every message is one AU ending in two AUDs (jmuxer's two-frame delay),
    without the encoder's own AUD and SEI; the stream decodes; and it is never sent faster
    than the camera's rate (jmuxer's clock is 1000/fps ms a frame)."""
    stack = make_stack([CAMERA])
    url = stack.url("/cam0/jmuxer").replace("http://", "ws://")
    msgs, times = asyncio.run(receive(url, 46))
    assert nal_types(msgs[0])[:3] == [7, 8, 5], nal_types(msgs[0])
    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_count = 1
    pictures = 0
    for i, m in enumerate(msgs):
        assert m.endswith(AUD + AUD), f"message {i} ends {m[-12:].hex()}"
        types = nal_types(m)
        assert types[-2:] == [9, 9] and 9 not in types[:-2] and 6 not in types, (i, types)
        assert 1 in types or 5 in types, f"message {i} carries no slice: {types}"
        pictures += len(decoder.decode(av.Packet(m)))
    assert pictures >= len(msgs) - 2, f"{pictures} pictures from {len(msgs)} AUs"
    # 45 intervals of 1/15 s are 3 s; faster than 15 fps by more than jitter would be a burst.
    span = times[-1] - times[1]
    assert span >= 44 / FPS * 0.9, f"45 AUs in {span:.2f} s: faster than {FPS} fps"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def stalled_client(port: int, path: str) -> socket.socket:
    """A WebSocket client that upgrades and then never reads a byte (a tiny receive
    buffer, so the front door's socket is behind within a few AUs)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


@pytest.fixture
def small_buffers() -> Iterator[str]:
    """A network namespace of our own whose TCP send buffers stay small (they are per
    namespace): on the host's loopback a socket that never reads still swallows up to
    4 MB in the kernel, seconds of video, before the front door could see it is behind."""
    ns = f"ti-jm-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        for cmd in (["ip", "link", "set", "lo", "up"], ["sysctl", "-qw", SMALL_TCP_BUFFERS]):
            subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_a_client_that_never_reads_costs_nothing_and_the_encoder_idles_after_the_last(
    make_stack: Callable[..., Stack], small_buffers: str
) -> None:
    """Pins per-client backpressure: a socket that never drains skips to the next keyframe
    instead of queueing, so the front door's memory stays flat and a reading client still
    gets every frame at the camera's rate; and the front door's demand: the encoder runs
    while jmuxer clients watch (nobody else does here) and idles once the last has gone."""
    stack = make_stack([{**CAMERA, "bitrate": "4000k"}], netns=small_buffers)
    assert not stack.camera()["encoder"]["active"]
    pid = stack.status()["services"]["mjpeg"]["pid"]
    url = stack.url("/cam0/jmuxer").replace("http://", "ws://")
    with namespaces.inside(small_buffers):  # our sockets are made in the stack's namespace
        stalled = [stalled_client(stack.port, "/cam0/jmuxer") for _ in range(3)]
    rss: dict[int, int] = {}
    held: dict[int, dict[str, int]] = {}

    def sample(n: int) -> None:
        if n in (WARM, WARM + WINDOW):
            rss[n] = rss_kb(pid)
        if n >= WARM and n % 5 == 0:
            held[n] = stack.camera()["jmuxer"]

    try:
        # The first seconds fill the stalled sockets' buffers and the allocator's pools;
        # the window after them is what a stalled client costs as time goes on.
        with namespaces.inside(small_buffers):
            msgs, times = asyncio.run(receive(url, WARM + WINDOW, timeout=30, each=sample))
        grown = rss[WARM + WINDOW] - rss[WARM]
        assert stack.camera()["encoder"]["active"], "jmuxer clients watch: the encoder runs"
        rate = (len(times) - 2) / (times[-1] - times[1])
        assert rate >= FPS * 0.8, f"the reading client got {rate:.1f} fps beside stalled ones"
        sent = sum(len(m) for m in msgs[WARM:])
        start, end = held[WARM], held[WARM + WINDOW]
        assert end["clients"] == 4 and end["skips"] > start["skips"], (start, end)
        # Each client may hold its socket's unsent bytes up to the point it counts as
        # behind, plus the AU written then and one pending; queues that grew would hold
        # what the reader got meanwhile, for each stalled client (2-3 MB each here).
        largest = max(len(m) for m in msgs)
        bound = 4 * (BEHIND_BYTES + 2 * largest)
        most = max(h["held_bytes"] for h in held.values())
        assert most <= bound, f"held {most} bytes for 4 clients (bound {bound}): {held}"
        # RSS moves by up to 1.4 MB over such a window with no stalled client at all
        # (measured): only a gross leak shows there. Unbounded queues grew it by 4 MB.
        assert grown < 3000, f"the front door grew {grown} kB; {sent} bytes were sent"
    finally:
        for s in stalled:
            s.close()
    stack.wait_for(
        lambda s: not s["cameras"]["cam0"]["encoder"]["active"], 8, "the encoder idle again"
    )


def test_an_address_keeps_at_most_four_clients_and_a_bad_fps_is_refused(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins the orphan cap: Mainsail opens a socket on every settings change and never
    closes the old one; the fifth client of an address closes the first, not itself."""
    stack = make_stack([CAMERA])
    url = stack.url("/cam0/jmuxer").replace("http://", "ws://")

    async def run() -> tuple[int | None, list[bool]]:
        async with aiohttp.ClientSession() as session:
            sockets = [await session.ws_connect(url) for _ in range(4)]
            await sockets[0].receive(timeout=10)  # served
            newest = await session.ws_connect(url)
            closed = await sockets[0].receive(timeout=10)
            while closed.type == aiohttp.WSMsgType.BINARY:
                closed = await sockets[0].receive(timeout=10)
            got = await newest.receive(timeout=10)
            open_ = [not s.closed for s in sockets[1:]]
            for s in [*sockets, newest]:
                await s.close()
            assert got.type == aiohttp.WSMsgType.BINARY
            return sockets[0].close_code, open_

    code, still_open = asyncio.run(run())
    assert code == 1008 and all(still_open), (code, still_open)
    # And an ?fps= that is not a rate is a clear 400, not a stream jmuxer would misplay.
    for fps in ("0", "abc", "500"):
        code, _, body = stack.get(f"/jmuxer?fps={fps}")
        assert code == 400 and b"fps must be" in body, (fps, code, body)


def test_many_clients_share_one_encode(make_stack: Callable[..., Stack]) -> None:
    """Pins one encode and one ring read per AU however many jmuxer clients watch: four
    clients at once each get the camera's rate while the encoder writes, and the front door
    reads, about one AU per frame, not one per client."""
    stack = make_stack([CAMERA])
    url = stack.url("/cam0/jmuxer").replace("http://", "ws://")
    clients, count = 4, 1 + 3 * FPS

    async def run() -> list[tuple[list[bytes], list[float]]]:
        return await asyncio.gather(*(receive(url, count) for _ in range(clients)))

    stack.wait_for(lambda s: s["cameras"]["cam0"]["online"], 10, "the camera online")
    before = stack.camera()
    got = asyncio.run(run())
    time.sleep(2.0)  # the encoder's counts reach /status once a second
    after = stack.camera()
    for _, times in got:
        rate = (len(times) - 2) / (times[-1] - times[1])
        assert rate >= FPS * 0.8, f"a client got {rate:.1f} fps of {FPS}"
    encoded = after["encoder"]["frames_out"] - before["encoder"]["frames_out"]
    taken = after["jmuxer"]["taken"] - before["jmuxer"]["taken"]
    # Each client took `count` AUs over about 3 s; one encode for all is about as many AUs
    # (a few more: from the join to the first keyframe, and until the demand went to 0).
    assert taken <= 1.5 * count and encoded <= 1.5 * count, (encoded, taken, count)


def loop_wakeups(pid: int) -> int:
    """Voluntary context switches of the front door's main thread (its event loop)."""
    for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def test_after_the_last_jmuxer_client_the_front_door_hears_no_aus_and_webrtc_plays_on(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins the front door's subscription to the encoder lasting only while it has H.264
    clients: after the last jmuxer client, with a WebRTC viewer keeping the encoder busy,
    it hears no AU and its loop does not wake per AU. Checks too, across the real services,
    that the front door's demand going to 0 leaves the WebRTC viewer's stream running
    (the encoder's sum of sources is pinned by test_encoder_demand_sources.py)."""
    stack = make_stack([CAMERA])
    peer = HeldPeer(stack.base)
    try:
        assert peer.playing.wait(20), f"the WebRTC viewer got no frame: {peer.error}"
        url = stack.url("/cam0/jmuxer").replace("http://", "ws://")
        asyncio.run(receive(url, 2 * FPS))
        time.sleep(4.0)  # past the encoder's demand timeout: a stale count would show now
        pid = stack.status()["services"]["mjpeg"]["pid"]
        cam0, woke0, frames0 = stack.camera(), loop_wakeups(pid), peer.frames
        time.sleep(3.0)
        cam1, woke1 = stack.camera(), loop_wakeups(pid)
        assert cam1["encoder"]["active"] and peer.frames - frames0 >= 2 * FPS, (
            "the WebRTC viewer lost its stream when the jmuxer client left"
        )
        assert cam1["jmuxer"] == {**cam0["jmuxer"], "clients": 0}, (cam0, cam1)
        aus = cam1["encoder"]["frames_out"] - cam0["encoder"]["frames_out"]
        # Measured: 25-28 wake-ups in 3 s for 43-46 AUs (heartbeats, the bus, /status);
        # subscribed, the loop also woke for every AU.
        assert woke1 - woke0 < aus, f"the loop woke {woke1 - woke0} times for {aus} AUs"
    finally:
        peer.close()


def test_low_priority_jmuxer_clients_are_shed_in_a_critical_phase(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    """Pins jmuxer clients under the governor's admission like MJPEG viewers: a
    ``priority=low`` client is dropped on the first layer of a print and a new one refused
    with 503, while a medium one keeps its frames."""
    stack = make_stack([CAMERA], governor=quiet_board(tmp_path))
    url = stack.url("/cam0/jmuxer").replace("http://", "ws://")

    async def run() -> tuple[str, int, int]:
        async with aiohttp.ClientSession() as session:
            low = await session.ws_connect(url + "?priority=low")
            medium = await session.ws_connect(url)
            for ws in (low, medium):
                assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY
            rpc = Endpoints(stack.runtime_dir).governor_rpc()
            await asyncio.to_thread(call, rpc, "print.state", state="printing", layer=1)
            ended = "open"
            async with asyncio.timeout(5):
                while ended == "open":
                    msg = await low.receive()
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        ended = msg.type.name
            try:
                await session.ws_connect(url + "?priority=low")
                refused = 0
            except aiohttp.WSServerHandshakeError as e:
                refused = e.status
            frames = 0
            async with asyncio.timeout(5):
                while frames < FPS:
                    if (await medium.receive()).type == aiohttp.WSMsgType.BINARY:
                        frames += 1
            await medium.close()
            return ended, refused, frames

    ended, refused, frames = asyncio.run(run())
    assert ended in ("CLOSE", "CLOSED", "CLOSING", "ERROR") and refused == 503, (ended, refused)
    assert frames == FPS


def test_pace_0_sends_each_au_as_it_is_encoded(make_stack: Callable[..., Stack]) -> None:
    """Pins the viewer element's WebCodecs path: paced at ``?fps=5`` a 15 fps camera's AUs
    queue and the client is skipped from keyframe to keyframe (a few messages a second,
    each late); with ``pace=0`` every AU comes as it is encoded, whatever ``fps`` says."""
    stack = make_stack([CAMERA])
    base = stack.url("/jmuxer?fps=5").replace("http://", "ws://")

    def rate(url: str) -> float:
        msgs, times = asyncio.run(receive(url, 2 * FPS, timeout=20))
        return (len(msgs) - 1) / (times[-1] - times[0])

    unpaced = rate(base + "&pace=0")
    assert unpaced > 0.7 * FPS, unpaced
    paced = rate(base)
    assert paced < 6, paced
    code, _, body = stack.get("/jmuxer?pace=fast")
    assert code == 400 and b"pace must be" in body, (code, body)
