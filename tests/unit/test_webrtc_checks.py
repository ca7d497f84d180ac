"""What checks.py says about remote SDP and candidates: each malformed line that reached
viewers as ``AssertionError`` or ``invalid literal for int()`` now has a reason."""

from __future__ import annotations

import pytest
from aiortc.sdp import SessionDescription

from titanium.services.webrtc.checks import candidate_problem, check_sdp, video_codec_problem

GOOD = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "a=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\na=recvonly\r\na=rtcp-mux\r\n"
    "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n"
    "a=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=ssrc:1 cname:x\r\n"
    "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n"
)


def test_a_browser_like_offer_passes_and_aiortc_reads_it() -> None:
    check_sdp(GOOD, "offer")
    SessionDescription.parse(GOOD)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("a=rtpmap:96 H264/90000", "a=rtpmap:x H264/90000", "rtpmap payload type"),
        ("m=video 9 ", "m=video x ", "m=video port is not a number"),
        ("\r\n", "\0", "control characters"),
        ("50000 typ", "5x000 typ", "candidate: port must be a number"),
        ("a=candidate:1 1 udp", "a=candidate:garbage", "candidate: expected"),
        ("apt=96", "apt=x", "apt must be a number"),
        ("UDP/TLS/RTP/SAVPF", "x", "transport must be like"),
        ("c=IN IP4 0.0.0.0", "c=garbage", "c= must be"),
        ("a=setup:actpass", "a=setup:sideways", "a=setup must be"),
        ("a=ssrc:1 cname:x", "a=ssrc:one cname:x", "a=ssrc must be"),
        ("96 97\r\n", "96 abc\r\n", "payload type 'abc'"),
    ],
)
def test_each_malformed_line_has_a_reason(old: str, new: str, reason: str) -> None:
    """Pins the 500 AssertionError and the 400 "invalid literal for int()" of aiortc."""
    bad = GOOD.replace(old, new)
    assert bad != GOOD
    with pytest.raises(ValueError, match=r"^offer: ") as e:
        check_sdp(bad, "offer")
    assert reason in str(e.value)
    assert "literal" not in str(e.value)


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        ("garbage", "expected"),
        ("candidate:1 1 udp 2130706431 127.0.0.1 port typ host", "port must be a number"),
        ("1 x udp 1 127.0.0.1 1 typ host", "component"),
        ("1 1 sctp 1 127.0.0.1 1 typ host", "transport"),
        ("1 1 udp p 127.0.0.1 1 typ host", "priority"),
        ("1 1 udp 1 127.0.0.1 1 typ magic", "type must be"),
        ("1 1 udp 1 1.2.3.4 1 typ srflx raddr 0.0.0.0 rport x", "rport"),
        ("1 1 udp 1 a/b 1 typ host", "address"),
    ],
)
def test_bad_candidates_have_a_reason(candidate: str, reason: str) -> None:
    problem = candidate_problem(candidate)
    assert problem is not None and reason in problem


def test_good_candidates_pass() -> None:
    for text in (
        "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
        "842163049 1 udp 1677729535 1.2.3.4 61234 typ srflx raddr 0.0.0.0 rport 0 generation 0",
        "1 1 tcp 1518280447 192.168.1.2 9 typ host tcptype active",
        "1 1 udp 2113937151 9b36c1b4-1b0d-4a3b-9b55-5e2f27e2c1a1.local 54400 typ host",
        "1 1 udp 2113937151 fe80::1 54400 typ host",
    ):
        assert candidate_problem(text) is None, text


def test_an_offer_without_h264_is_told_why() -> None:
    """Pins: Firefox without its OpenH264 plugin offers VP8 and VP9 only, and heard aiortc's
    "Failed to set remote video description send parameters"."""
    firefox = GOOD.replace("a=rtpmap:96 H264/90000", "a=rtpmap:96 VP8/90000").replace(
        "a=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n", ""
    )
    problem = video_codec_problem(firefox)
    assert problem is not None and "no H.264 (it offers VP8)" in problem, problem
    assert video_codec_problem(GOOD) is None
    # An audio section's codecs are not the video's.
    audio = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\nm=video"
    assert video_codec_problem(GOOD.replace("m=video", audio, 1)) is None
    assert video_codec_problem(firefox.replace("m=video", audio, 1)) is not None
