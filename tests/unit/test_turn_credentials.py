"""Minting coturn REST-API credentials and validating TURN URLs (titanium.mirage.turn)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from titanium.mirage.turn import ice_servers, mint, parse_turn_url


def test_known_vector() -> None:
    """The credential coturn will recompute: base64(HMAC-SHA1(secret, "<expiry>:<name>")), the
    time being the expiry. The literal came from `openssl dgst -sha1 -hmac north-wind`."""
    creds = mint("north-wind", "viewer-42", ttl=3600, now=1700000000.9)
    assert creds.username == "1700003600:viewer-42"
    assert creds.expires == 1700003600
    assert creds.credential == "Fq+F/kbftQKErjbx42IldXAMAOM="
    expected = hmac.new(b"north-wind", b"1700003600:viewer-42", hashlib.sha1).digest()
    assert base64.b64decode(creds.credential) == expected
    assert mint(b"north-wind", "viewer-42", 3600, 1700000000).credential == creds.credential


def test_ice_servers_one_entry_per_url_in_order() -> None:
    urls = ["turn:turn.example:3478?transport=udp", "turn:turn.example?transport=tcp"]
    entries = ice_servers("s3cret", urls, "sess", ttl=60, now=1000)
    assert [e["urls"] for e in entries] == urls
    assert {e["username"] for e in entries} == {"1060:sess"}
    assert len({e["credential"] for e in entries}) == 1


@pytest.mark.parametrize(
    ("url", "host", "port", "transport"),
    [
        ("turn:turn.example", "turn.example", 3478, "udp"),
        ("turn:10.0.0.1:3479?transport=tcp", "10.0.0.1", 3479, "tcp"),
        ("turn:t?transport=udp", "t", 3478, "udp"),
        ("turns:turn.example", "turn.example", 5349, "tcp"),
        ("turns:turn.example:443?transport=tcp", "turn.example", 443, "tcp"),
    ],
)
def test_valid_urls(url: str, host: str, port: int, transport: str) -> None:
    p = parse_turn_url(url)
    assert (p.host, p.port, p.transport) == (host, port, transport)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("stun:turn.example", "expected turn:"),
        ("http://turn.example", "expected turn:"),
        ("turn://turn.example", "expected turn:"),
        ("turn:", "expected turn:"),
        ("turn:[::1]:3478", "IPv6"),
        ("turn:turn.example?transport=sctp", "udp or tcp"),
        ("turn:turn.example:0", "1..65535"),
        ("turn:turn.example:70000", "1..65535"),
        ("turns:turn.example?transport=udp", "must be tcp"),
        ("turn:user@turn.example", "expected turn:"),
        ("turn:turn.example?transport=udp&x=1", "udp or tcp"),
    ],
)
def test_invalid_urls_say_why(url: str, says: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_turn_url(url)
    assert says in str(err.value)
    assert repr(url) in str(err.value)


def test_invalid_mint_arguments() -> None:
    with pytest.raises(ValueError, match="secret is empty"):
        mint("", "n", 60)
    with pytest.raises(ValueError, match="without ':'"):
        mint("s", "a:b", 60)
    with pytest.raises(ValueError, match="without ':'"):
        mint("s", "", 60)
    for ttl in (0, -5, 86401, 1.5, True):
        with pytest.raises(ValueError, match="ttl"):
            mint("s", "n", ttl)
    with pytest.raises(ValueError, match="512 bytes"):
        mint("s", "x" * 600, 60)
    with pytest.raises(ValueError, match="no TURN URLs"):
        ice_servers("s", [], "n", 60)
    with pytest.raises(ValueError, match="expected turn:"):
        ice_servers("s", ["turn:ok", "stun:no"], "n", 60)
