"""The proxy's device registry: which printers may dial in, in SQLite (WAL) under the state
directory.

A device is a name, a random id and a random secret. Only a salted hash of the secret is
stored (a salt per device), so a copied database does not let anyone pose as a printer; the
secret is shown once, when the device is added.

The secret is 32 random bytes, not a password: nobody can guess it from its hash, however
fast the hash, so HMAC-SHA256 does. A slow password hash (scrypt, which this registry used
first) only cost the proxy ~60 ms of CPU per connection, a minute for a thousand printers
reconnecting after a proxy restart. Devices added with scrypt still verify, and are rehashed
on their next successful login. The CLI (titanium/miragecli.py)
and a running proxy share the database: SQLite serializes the writers, and the proxy polls
``removed_since()`` — a log of removals, one indexed read however many devices are
registered — to cut off devices removed under it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from titanium.common.state import open_db

DB_FILE = "devices.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS removed (id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS removed_at ON removed (at);
"""
# Databases made before the hash changed have no kdf column: their rows are scrypt.
MIGRATION = "ALTER TABLE devices ADD COLUMN kdf TEXT NOT NULL DEFAULT 'scrypt'"
KDF = "hmac-sha256"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
MAX_NAME = 100


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    added: float


def _hash(secret: str, salt: bytes, kdf: str = KDF) -> bytes:
    if kdf == "scrypt":
        return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)
    return hmac.digest(salt, secret.encode(), "sha256")


class Devices:
    """The device registry of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def _db(self) -> sqlite3.Connection:
        db = open_db(self.state_dir, DB_FILE, SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(devices)")}
        if "kdf" not in columns:
            with db:
                db.execute(MIGRATION)
        return db

    def add(self, name: str) -> tuple[Device, str]:
        """A new device called ``name``: the device and its secret (not kept anywhere)."""
        if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
            raise ValueError(f"a printable device name of 1 to {MAX_NAME} characters")
        device = Device("dev_" + secrets.token_hex(8), name, time.time())
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        db = self._db()
        try:
            with db:
                db.execute(
                    "INSERT INTO devices (id, name, salt, hash, added, kdf) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (device.id, name, salt, _hash(secret, salt), device.added, KDF),
                )
        finally:
            db.close()
        return device, secret

    def remove(self, device_id: str) -> bool:
        """Forget the device; False when there was none with this id."""
        db = self._db()
        try:
            with db:
                cur = db.execute("DELETE FROM devices WHERE id = ?", (device_id,))
                if cur.rowcount > 0:
                    db.execute(
                        "INSERT OR REPLACE INTO removed VALUES (?, ?)", (device_id, time.time())
                    )
            return cur.rowcount > 0
        finally:
            db.close()

    def removed_since(self, since: float) -> tuple[set[str], float]:
        """The ids removed at or after ``since`` (unix time), and the time to ask from next.
        A running proxy polls this: re-reading the whole registry instead cost it 4.5 ms of
        CPU a second with 1,000 devices registered, growing with each one."""
        db = self._db()
        try:
            rows = db.execute("SELECT id, at FROM removed WHERE at >= ?", (since,)).fetchall()
        finally:
            db.close()
        return {r[0] for r in rows}, max((r[1] for r in rows), default=since)

    def list(self) -> list[Device]:
        db = self._db()
        try:
            rows = db.execute("SELECT id, name, added FROM devices ORDER BY added").fetchall()
        finally:
            db.close()
        return [Device(*row) for row in rows]

    def ids(self) -> set[str]:
        """Every registered id: what the proxy checks its connected devices against."""
        return {d.id for d in self.list()}

    def verify(self, device_id: str, secret: str) -> Device | None:
        """The device when ``secret`` is its secret, else None (unknown id or wrong secret)."""
        db = self._db()
        try:
            row = db.execute(
                "SELECT id, name, added, salt, hash, kdf FROM devices WHERE id = ?", (device_id,)
            ).fetchone()
            if row is None:
                # Hash anyway, so that an unknown id takes as long as a wrong secret.
                _hash(secret, b"\0" * 16)
                return None
            _, _, _, salt, digest, kdf = row
            if not hmac.compare_digest(_hash(secret, salt, kdf), digest):
                return None
            if kdf != KDF:
                with db:
                    db.execute(
                        "UPDATE devices SET hash = ?, kdf = ? WHERE id = ?",
                        (_hash(secret, salt), KDF, device_id),
                    )
        finally:
            db.close()
        return Device(row[0], row[1], row[2])
