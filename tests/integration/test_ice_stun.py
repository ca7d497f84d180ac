"""WebRTC signalling with a STUN server configured: a real coturn inside a network namespace
this test creates, reached over a veth pair, because the failure only shows when the STUN
server is not on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import coturn
from tests.integration.conftest import Stack
from tests.integration.stun import offer_to_nowhere

# Generous for a loaded 2-core machine, far below the 5 s aioice waited out before.
ANSWER_BOUND = 2.5


class StunNamespace:
    """coturn (STUN only) in its own network namespace at ``server``, reached through a veth
    pair whose root-namespace end is ``local``; the namespace routes back through it, so a
    query from any of this machine's addresses is answered."""

    def __init__(self, tmp: Path) -> None:
        self.port = 3478
        self.proc: subprocess.Popen[bytes] | None = None
        self.ns = coturn.VethNamespace("stun", 231)
        self.local, self.server = self.ns.local, self.ns.server
        try:
            self.proc = self.ns.popen(coturn.command(tmp, self.server, self.port, "stun"))
            coturn.wait_answering(self.proc, tmp, self.server, self.port)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        coturn.stop(self.proc)
        self.ns.close()


@pytest.fixture
def stun(tmp_path: Path) -> Iterator[StunNamespace]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace for the STUN server")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's `ip netns` for the STUN server's namespace")
    if shutil.which("turnserver") is None:
        pytest.skip("needs Debian's coturn (turnserver): apt-get install coturn")
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"`ip netns` does not work here: {probe.stderr.decode().strip()}")
    server = StunNamespace(tmp_path)
    yield server
    server.close()


def _post(stack: Stack, path: str, body: bytes, content_type: str) -> tuple[float, Any, str]:
    """POST and time it; returns (seconds, response headers, body text)."""
    req = urllib.request.Request(stack.url(path), data=body, headers={"Content-Type": content_type})
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=15) as r:
        text = r.read().decode()
        return time.monotonic() - t0, r.headers, text


def _candidates(sdp: str) -> list[list[str]]:
    return [line.split() for line in sdp.splitlines() if line.startswith("a=candidate:")]


def _stun_stack(
    make_stack: Callable[..., Stack], stun: StunNamespace, addresses: list[str]
) -> Stack:
    return make_stack(
        cameras=[{"device": "testpattern", "resolution": "320x240", "fps": 10}],
        webrtc={"ice_addresses": addresses},
        mirage={"titanium_streams": {"stun_servers": [f"stun:{stun.server}:{stun.port}"]}},
    )


def test_stun_server_costs_no_wait_and_no_loopback_candidate(
    make_stack: Callable[..., Stack], stun: StunNamespace
) -> None:
    """Pins: with a STUN server configured and ice_addresses unset, every camera-streamer
    offer and WHEP answer took 5 s (aioice queried STUN from its 127.0.0.1 socket, the send
    failed with EINVAL and gathering waited out its timeout), and remote peers were offered
    a useless 127.0.0.1 candidate. Now: well under the bound, a server-reflexive candidate
    learnt from the real STUN server, no loopback candidate."""
    stack = _stun_stack(make_stack, stun, [])
    for attempt in range(2):
        body = json.dumps({"type": "request", "iceServers": [], "keepAlive": False}).encode()
        seconds, _, text = _post(stack, "/webrtc", body, "application/json")
        offer = json.loads(text)
        cands = _candidates(offer["sdp"])
        assert seconds < ANSWER_BOUND, f"offer {attempt} took {seconds:.2f} s:\n{stack.log()}"
        assert not [c for c in cands if c[4].startswith("127.")], cands
        assert any(c[4] == stun.local and c[7] == "host" for c in cands), cands
        # The reflexive address is our veth end: STUN was really asked and answered.
        assert any(c[7] == "srflx" and c[4] == stun.local for c in cands), cands

    seconds, headers, answer = _post(
        stack, "/whep", asyncio.run(offer_to_nowhere(stun.server)).encode(), "application/sdp"
    )
    assert seconds < ANSWER_BOUND, f"WHEP answer took {seconds:.2f} s:\n{stack.log()}"
    cands = _candidates(answer)
    assert not [c for c in cands if c[4].startswith("127.")], cands
    assert any(c[7] == "srflx" for c in cands), answer
    location = urllib.parse.urljoin(stack.url("/whep"), headers["Location"])
    urllib.request.urlopen(urllib.request.Request(location, method="DELETE"), timeout=5)


def test_explicit_loopback_with_stun_costs_no_wait(
    make_stack: Callable[..., Stack], stun: StunNamespace
) -> None:
    """Pins: ``ice_addresses: ["127.0.0.1"]`` (the board's own screen, tests) with a STUN
    server configured also waited 5 s for the loopback socket's failed STUN query. The
    loopback candidate asked for is still offered."""
    stack = _stun_stack(make_stack, stun, ["127.0.0.1"])
    body = json.dumps({"type": "request", "iceServers": [], "keepAlive": False}).encode()
    seconds, _, text = _post(stack, "/webrtc", body, "application/json")
    cands = _candidates(json.loads(text)["sdp"])
    assert seconds < ANSWER_BOUND, f"offer took {seconds:.2f} s:\n{stack.log()}"
    assert [c[4] for c in cands] == ["127.0.0.1"], cands
