"""common/tokens.py: tokens that sign, expire, name their cameras and rights, and revoke."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest

from titanium.common.tokens import KEY_FILE, TokenError, Tokens, parse_ttl


def test_a_token_grants_what_it_names_and_is_url_safe(tmp_path: Path) -> None:
    tokens = Tokens(tmp_path / "state")
    token, grant = tokens.create("kitchen tablet", ["cam0"], "control", ttl=3600)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    got = Tokens(tmp_path / "state").verify(token)  # another process: the same key on disk
    assert got == grant
    assert got.sees("cam0") and not got.sees("cam1")
    assert got.may("view") and got.may("control") and not got.may("admin")
    key = tmp_path / "state" / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda t: None, "missing"),
        (lambda t: "not-a-token", "bad"),
        (lambda t: t.create("x", ttl=3600)[0][:-3] + "abc", "bad"),  # signature altered
        (
            lambda t: jwt.encode(
                {"jti": "a", "sub": "x", "exp": int(time.time()) - 5}, t.key(), algorithm="HS256"
            ),
            "expired",
        ),
        (
            lambda t: jwt.encode(
                {"jti": "a", "sub": "x", "exp": int(time.time()) + 60}, b"k" * 32, "HS256"
            ),
            "bad",
        ),  # signed by another Titanium
    ],
)
def test_unusable_tokens_say_why(tmp_path: Path, make: object, code: str) -> None:
    tokens = Tokens(tmp_path)
    with pytest.raises(TokenError) as info:
        tokens.verify(make(tokens))  # type: ignore[operator]
    assert info.value.code == code and info.value.reason


def test_revocation_persists_and_reaches_other_processes(tmp_path: Path) -> None:
    issuer = Tokens(tmp_path)
    checker = Tokens(tmp_path)
    token, grant = issuer.create("guest", ttl=3600)
    assert checker.verify(token) == grant
    assert Tokens(tmp_path).revoke(grant.id)  # titaniumctl token revoke, a third process
    assert checker.refresh() == {grant.id}
    with pytest.raises(TokenError, match="revoked"):
        checker.verify(token)
    with pytest.raises(TokenError, match="revoked"):
        Tokens(tmp_path).verify(token)  # after a restart too
    assert not issuer.revoke("no-such-id")
    (listed,) = issuer.list()
    assert listed["id"] == grant.id and listed["revoked"] and not listed["expired"]


def test_ttl_forms() -> None:
    assert parse_ttl("30d") == 30 * 86400
    assert parse_ttl("12h") == 12 * 3600
    assert parse_ttl("90") == 90
    with pytest.raises(ValueError, match="30d"):
        parse_ttl("soon")
    with pytest.raises(ValueError, match="1 minute"):
        parse_ttl("5s")
