"""Sessions die with their token (issue 10): revoking a token ends its live MJPEG streams
and WebRTC peers within 2 s, and its session cap counts both kinds. Tokens are made with
``Tokens(stack.state_dir)`` and revoked there, as ``titaniumctl token revoke`` does.

The auth middleware (services/mjpeg/auth.py) turns a request's token into its grant.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import aiohttp
from yarl import URL

from tests.integration.conftest import Stack
from tests.integration.mjpeg_client import Drain, MjpegClient
from tests.integration.rtc_client import HeldPeer, recvonly_offer
from titanium.common.tokens import Tokens

REVOKED_WITHIN = 2.0  # the bound


def _token_stack(make_stack: Callable[..., Stack], **http: Any) -> Stack:
    stack = make_stack(http={"auth": "token", **http})
    try:
        with urllib.request.urlopen(stack.url("/status"), timeout=5):
            raise AssertionError("/status answered without a token")
    except urllib.error.HTTPError as e:
        assert e.code == 401
    return stack


def test_revoking_a_token_ends_its_mjpeg_stream_and_webrtc_peer_within_2_s(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins: a revoked token's sessions lived on (only new requests were refused)."""
    stack = _token_stack(make_stack)
    tokens = Tokens(stack.state_dir)
    doomed, grant = tokens.create("doomed")
    kept, _ = tokens.create("kept")
    stream = Drain(MjpegClient(stack.port, f"/stream?token={doomed}"))
    bystander = Drain(MjpegClient(stack.port, f"/stream?token={kept}"))
    peer = HeldPeer(f"{stack.base}/t/{doomed}")
    try:
        assert peer.playing.wait(20), (peer.state, peer.error, stack.log())
        time.sleep(0.3)
        assert stream.bytes > 0 and not stream.ended.is_set(), stream.error
        sessions = stack.status()["webrtc"]["sessions"]
        assert [s["token"] for s in sessions] == [grant.id], sessions
        revoked = time.monotonic()
        assert tokens.revoke(grant.id)
        assert stream.ended.wait(REVOKED_WITHIN + 1), "the MJPEG stream lives on"
        stream_end = time.monotonic() - revoked
        assert peer.ended.wait(REVOKED_WITHIN + 1), f"the peer lives on: {peer.state}"
        peer_end = time.monotonic() - revoked
        assert stream_end < REVOKED_WITHIN and peer_end < REVOKED_WITHIN, (stream_end, peer_end)
        stack.wait_for(lambda st: st["webrtc"]["sessions"] == [], 2, "the peer gone")
        assert not bystander.ended.is_set(), "another token's stream is not ended"
        bytes_before = bystander.bytes
        time.sleep(0.5)
        assert bystander.bytes > bytes_before
    finally:
        peer.close()
        for drain in (stream, bystander):
            drain.client.close()


async def _whep(url: str) -> int:
    pc = await recvonly_offer()
    headers = {"Content-Type": "application/sdp"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=pc.localDescription.sdp, headers=headers) as r,
    ):
        body = await r.text()
    await pc.close()
    if r.status == 429:
        assert "sessions_per_token" in json.loads(body)["error"], body
    return r.status


def test_a_token_holds_at_most_its_cap_of_streams_and_peers_from_any_address(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins: no cap per token, so one leaked token could hold every viewer slot."""
    stack = _token_stack(make_stack, limits={"sessions_per_token": 2})
    token, _ = Tokens(stack.state_dir).create("capped")
    other, _ = Tokens(stack.state_dir).create("other")
    first = MjpegClient(stack.port, f"/stream?token={token}")
    second = MjpegClient(stack.port, f"/stream?token={token}", source="127.0.0.2")
    refused = MjpegClient(stack.port, f"/stream?token={token}", source="127.0.0.3")
    fine = MjpegClient(stack.port, f"/stream?token={other}")
    try:
        assert first.status_line.endswith("200 OK") and second.status_line.endswith("200 OK")
        assert refused.status_line.endswith("429 Too Many Requests"), refused.status_line
        assert int(refused.headers["retry-after"]) >= 1
        assert fine.status_line.endswith("200 OK")
        assert asyncio.run(_whep(stack.url(f"/t/{token}/whep"))) == 429
    finally:
        for client in (first, second, refused, fine):
            client.close()


def _post_json(stack: Stack, path: str, body: dict[str, Any], token: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        stack.url(path),
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_a_session_answers_only_the_token_it_was_opened_with(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins: any valid token that knew a session id could trickle to it or end it."""
    stack = _token_stack(make_stack)
    owner, _ = Tokens(stack.state_dir).create("owner", ttl=3600)
    other, _ = Tokens(stack.state_dir).create("someone else", ttl=3600)
    code, offer = _post_json(stack, "/webrtc", {"type": "request"}, owner)
    assert code == 200 and offer["type"] == "offer", offer
    trickle = {"type": "remote_candidate", "id": offer["id"], "candidates": []}
    code, reply = _post_json(stack, "/webrtc", trickle, other)
    assert code == 404 and "no session" in reply["error"], reply
    assert _post_json(stack, "/webrtc", trickle, owner) == (200, {})


def test_an_expiring_token_ends_its_stream_and_peer_when_it_expires(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins: a session opened with a token outlived the token's expiry."""
    stack = _token_stack(make_stack)
    token, grant = Tokens(stack.state_dir).create("brief", ttl=12)
    stream = Drain(MjpegClient(stack.port, f"/stream?token={token}"))
    peer = HeldPeer(f"{stack.base}/t/{token}")
    try:
        assert peer.playing.wait(10), (peer.state, peer.error, stack.log())
        assert not stream.ended.is_set(), stream.error
        left = grant.expires - time.time()
        assert left > 0, "the token expired before the sessions were up: a slow machine"
        assert stream.ended.wait(left + REVOKED_WITHIN), "the MJPEG stream outlived its token"
        assert peer.ended.wait(REVOKED_WITHIN), f"the peer outlived its token: {peer.state}"
        assert time.time() - grant.expires < REVOKED_WITHIN + 0.5
    finally:
        peer.close()
        stream.client.close()


async def _whep_location(url: str) -> tuple[int, str]:
    pc = await recvonly_offer()
    headers = {"Content-Type": "application/sdp"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=pc.localDescription.sdp, headers=headers) as r:
            status, location = r.status, r.headers.get("Location", "")
        if status == 201:
            session = str(URL(url).join(URL(location)))
            async with http.delete(session) as r:
                status = r.status if r.status != 200 else status
    await pc.close()
    return status, location


def test_a_whep_session_opened_with_a_query_token_keeps_it_in_its_location(
    make_stack: Callable[..., Stack],
) -> None:
    """Pins: with ?token=, the session URL dropped the token, so PATCH and DELETE got 401."""
    stack = _token_stack(make_stack)
    token, _ = Tokens(stack.state_dir).create("query", ttl=3600)
    status, location = asyncio.run(_whep_location(stack.url(f"/whep?token={token}")))
    assert status == 201 and f"?token={token}" in location, (status, location)
