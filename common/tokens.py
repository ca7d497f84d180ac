"""Access tokens: signed, expiring, URL-safe, revocable.

A token is a JWT (PyJWT, HS256) carrying its id (``jti``), its holder's name (``sub``), the
cameras it may see (``cams``; empty for every camera), for a Mirage proxy's token the devices
it may reach (``devs``; absent from LAN tokens), its right (``rights``: ``view`` <
``control`` < ``admin``, each including the ones before) and its expiry (``exp``). JWTs are
base64url with dots: they survive ``decodeURIComponent``, a query string and a path segment
unchanged, which is what Mainsail's and Fluidd's players need (PROTOCOLS.md, "Tokens that
browser clients can carry").

The signing key (32 random bytes) and the token database live in the state directory: the key
is created on first use, owner-only; the database (SQLite, WAL) lists every token issued and
every one revoked, so a revocation survives a restart. Verifying reads the key once and
asks the database only whether the id was revoked (a cached set, refreshed by
:meth:`Tokens.refresh`), so it costs no disk access per request.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from titanium.common.state import open_db

if TYPE_CHECKING:
    import sqlite3

# PyJWT and sqlite3 are imported on first use: with auth off the front door never loads
# them (PyJWT pulls in the cryptography package where it is installed, several MB).

RIGHTS = ("view", "control", "admin")
ALGORITHM = "HS256"
KEY_FILE = "token.key"
DB_FILE = "tokens.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS issued (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, cameras TEXT NOT NULL, rights TEXT NOT NULL,
    issued REAL NOT NULL, expires REAL NOT NULL, devices TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS revoked (id TEXT PRIMARY KEY, at REAL NOT NULL);
"""


class TokenError(Exception):
    """A token that cannot be used; ``code`` is 'missing', 'bad', 'expired' or 'revoked'
    (each answered 401), ``reason`` says why in the client's terms."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Grant:
    """What a valid token allows."""

    id: str
    name: str
    cameras: tuple[str, ...]  # empty: every camera
    rights: str
    issued: float
    expires: float
    devices: tuple[str, ...] = ()  # the Mirage proxy's devices; empty in a LAN token

    def sees(self, camera: str) -> bool:
        return not self.cameras or camera in self.cameras

    def may(self, right: str) -> bool:
        """``right`` or more: ``admin`` may control, ``control`` may view."""
        return RIGHTS.index(self.rights) >= RIGHTS.index(right)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "cameras": list(self.cameras),
            "rights": self.rights,
            "issued": self.issued,
            "expires": self.expires,
            **({"devices": list(self.devices)} if self.devices else {}),
        }


def parse_ttl(text: str) -> float:
    """Seconds in ``'30d'``, ``'12h'``, ``'45m'``, ``'90s'`` or a bare number of seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    text = text.strip().lower()
    scale = units.get(text[-1:], 0)
    number = text[:-1] if scale else text
    scale = scale or 1
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"a duration such as 30d, 12h, 45m or 90s, not {text!r}") from None
    if not 60 <= value <= 10 * 365 * 86400:
        raise ValueError("a duration from 1 minute to 10 years")
    return value


def _create_key(path: Path) -> None:
    """A new key at ``path``, whole or not at all: written and fsynced under another name,
    then linked into place (which fails if another process got there first, and then its
    key is the one). Created in place, a writer killed, or a power cut, between the create
    and the write left an empty key: every token refused, for good."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return
        dirfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)  # the new name too, not only the bytes
        finally:
            os.close(dirfd)
    finally:
        tmp.unlink(missing_ok=True)


class Tokens:
    """The token authority of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._key: bytes | None = None
        self._revoked: set[str] = set()
        self._revoked_at = 0.0  # the newest revocation time seen
        self._refreshed = False

    # -- storage ------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = open_db(self.state_dir, DB_FILE, SCHEMA)
        # A database made before the devices column existed (CREATE … IF NOT EXISTS keeps it).
        columns = {row[1] for row in db.execute("PRAGMA table_info(issued)")}
        if "devices" not in columns:
            with db:
                db.execute("ALTER TABLE issued ADD COLUMN devices TEXT NOT NULL DEFAULT ''")
        return db

    def key(self) -> bytes:
        """The signing key, created (owner-only) on first use."""
        if self._key is None:
            path = self.state_dir / KEY_FILE
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                _create_key(path)
            self._key = path.read_bytes()
            if len(self._key) < 32:
                raise TokenError("bad", f"the signing key {path} is damaged")
        return self._key

    # -- issuing ------------------------------------------------------------------------

    def create(
        self,
        name: str,
        cameras: Iterable[str] = (),
        rights: str = "view",
        ttl: float = 30 * 86400,
        devices: Iterable[str] = (),
    ) -> tuple[str, Grant]:
        """A new token and what it grants; ``devices`` only for the Mirage proxy's tokens."""
        if rights not in RIGHTS:
            raise ValueError(f"rights: one of {', '.join(RIGHTS)}, not {rights!r}")
        now = float(int(time.time()))  # JWT times are whole seconds
        grant = Grant(
            secrets.token_hex(8),
            name,
            tuple(cameras),
            rights,
            now,
            now + int(ttl),
            tuple(devices),
        )
        claims: dict[str, Any] = {
            "jti": grant.id,
            "sub": grant.name,
            "cams": list(grant.cameras),
            "rights": grant.rights,
            "iat": int(grant.issued),
            "exp": int(grant.expires),
        }
        if grant.devices:
            claims["devs"] = list(grant.devices)
        import jwt

        token = jwt.encode(claims, self.key(), algorithm=ALGORITHM)
        with self._db() as db:
            db.execute(
                "INSERT INTO issued (id, name, cameras, rights, issued, expires, devices) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    grant.id,
                    name,
                    ",".join(grant.cameras),
                    rights,
                    grant.issued,
                    grant.expires,
                    ",".join(grant.devices),
                ),
            )
        return token, grant

    def revoke(self, token_id: str) -> bool:
        """Revoke the token with this id; False when no such token was issued here."""
        with self._db() as db:
            known = db.execute("SELECT 1 FROM issued WHERE id = ?", (token_id,)).fetchone()
            if known is None:
                return False
            db.execute("INSERT OR IGNORE INTO revoked VALUES (?, ?)", (token_id, time.time()))
        self._revoked.add(token_id)
        return True

    def list(self) -> list[dict[str, Any]]:
        """Every token issued, newest first, with whether it is revoked or expired."""
        with self._db() as db:
            rows = db.execute(
                "SELECT i.id, i.name, i.cameras, i.rights, i.issued, i.expires, i.devices, r.at "
                "FROM issued i LEFT JOIN revoked r ON r.id = i.id ORDER BY i.issued DESC"
            ).fetchall()
        now = time.time()
        out = []
        for tid, name, cams, rights, issued, expires, devs, revoked in rows:
            grant = Grant(
                tid,
                name,
                tuple(c for c in cams.split(",") if c),
                rights,
                issued,
                expires,
                tuple(d for d in devs.split(",") if d),
            )
            out.append({**grant.describe(), "revoked": revoked, "expired": expires <= now})
        return out

    # -- checking -----------------------------------------------------------------------

    def refresh(self) -> set[str]:
        """Read revocations made since the last call (by any process); returns the ids
        newly revoked, so their live sessions can be ended."""
        with self._db() as db:
            rows = db.execute(
                "SELECT id, at FROM revoked WHERE at >= ?", (self._revoked_at,)
            ).fetchall()
        self._refreshed = True
        new = {tid for tid, _ in rows} - self._revoked
        self._revoked |= new
        self._revoked_at = max([self._revoked_at, *(at for _, at in rows)])
        return new

    def verify(self, token: str | None) -> Grant:
        """What ``token`` grants; TokenError when it is missing, bad, expired or revoked."""
        import jwt

        if not token:
            raise TokenError("missing", "this needs a token (?token=, /t/TOKEN/…, Bearer or Basic)")
        try:
            claims = jwt.decode(
                token,
                self.key(),
                algorithms=[ALGORITHM],
                options={"require": ["exp", "jti", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("expired", "the token has expired") from None
        except jwt.InvalidTokenError:
            raise TokenError("bad", "the token is not one this Titanium issued") from None
        cams = claims.get("cams") or []
        rights = claims.get("rights", "view")
        devs = claims.get("devs") or []
        if not isinstance(cams, list) or not isinstance(devs, list) or rights not in RIGHTS:
            raise TokenError("bad", "the token is not one this Titanium issued")
        grant = Grant(
            str(claims["jti"]),
            str(claims["sub"]),
            tuple(str(c) for c in cams),
            rights,
            float(claims.get("iat", 0)),
            float(claims["exp"]),
            tuple(str(d) for d in devs),
        )
        if not self._refreshed:
            self.refresh()
        if grant.id in self._revoked:
            raise TokenError("revoked", "the token was revoked")
        return grant
