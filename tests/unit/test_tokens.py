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


def test_a_proxy_token_names_its_devices_and_a_lan_token_none(tmp_path: Path) -> None:
    """Pins: the Mirage proxy's tokens carry the device ids they may reach (`devs`), kept
    through verify and list; a LAN token has no `devs` claim and no devices."""
    tokens = Tokens(tmp_path)
    token, grant = tokens.create("remote", ["cam0"], ttl=3600, devices=["dev_a", "dev_b"])
    assert jwt.decode(token, options={"verify_signature": False})["devs"] == ["dev_a", "dev_b"]
    assert Tokens(tmp_path).verify(token).devices == ("dev_a", "dev_b") == grant.devices
    assert tokens.list()[0]["devices"] == ["dev_a", "dev_b"]
    lan, lan_grant = tokens.create("tablet", ttl=3600)
    assert "devs" not in jwt.decode(lan, options={"verify_signature": False})
    assert tokens.verify(lan).devices == () and "devices" not in lan_grant.describe()


def test_a_database_from_before_devices_is_migrated(tmp_path: Path) -> None:
    """Pins: a token database made before the `devices` column keeps its tokens (they still
    verify and revoke) and takes device tokens after the column is added."""
    import sqlite3

    tokens = Tokens(tmp_path)
    old_token, old = tokens.create("old", ttl=3600)
    db = sqlite3.connect(tmp_path / "tokens.sqlite")
    with db:
        db.execute("DROP TABLE issued")
        db.execute(
            "CREATE TABLE issued (id TEXT PRIMARY KEY, name TEXT NOT NULL, cameras TEXT NOT "
            "NULL, rights TEXT NOT NULL, issued REAL NOT NULL, expires REAL NOT NULL)"
        )
        db.execute("INSERT INTO issued VALUES (?, 'old', '', 'view', 1, 2e9)", (old.id,))
    db.close()
    again = Tokens(tmp_path)
    _, grant = again.create("new", ttl=3600, devices=["dev_a"])
    assert again.verify(old_token).id == old.id
    assert {t["id"]: t.get("devices") for t in again.list()} == {old.id: None, grant.id: ["dev_a"]}
    assert again.revoke(old.id)
