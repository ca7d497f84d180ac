"""The Mirage proxy's device registry (mirage/devices.py) on a temporary state directory."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from titanium.mirage.devices import DB_FILE, Devices


def test_only_a_salted_hash_is_stored(tmp_path: Path) -> None:
    """Pins: the database holds no device secret, only a per-device salt and hash, so a
    copied database does not let anyone pose as a printer; two devices never share a salt."""
    devices = Devices(tmp_path)
    (a, secret_a), (b, secret_b) = devices.add("a"), devices.add("b")
    raw = b"".join(f.read_bytes() for f in tmp_path.glob(DB_FILE + "*"))
    assert secret_a.encode() not in raw and secret_b.encode() not in raw
    db = sqlite3.connect(tmp_path / DB_FILE)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    rows = dict(db.execute("SELECT id, salt FROM devices ORDER BY added"))
    db.close()
    salts = list(rows.values())
    assert len(set(salts)) == 2 and all(len(s) == 16 for s in salts)
    assert a.id != b.id and secret_a != secret_b


def test_verify_remove_list(tmp_path: Path) -> None:
    """Pins: verify accepts only the right secret for the right id; a removed device fails
    verification and leaves the list."""
    devices = Devices(tmp_path)
    dev, secret = devices.add("voron")
    other, other_secret = devices.add("prusa")
    assert devices.verify(dev.id, secret) == dev
    assert devices.verify(dev.id, other_secret) is None
    assert devices.verify("dev_unknown", secret) is None
    assert [d.name for d in devices.list()] == ["voron", "prusa"]
    assert devices.remove(dev.id) and not devices.remove(dev.id)
    assert devices.verify(dev.id, secret) is None
    assert devices.ids() == {other.id}


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 101])
def test_bad_names_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        Devices(tmp_path).add(name)


def test_verify_is_cheap_enough_for_a_thousand_reconnects(tmp_path: Path) -> None:
    """Pins: verifying a device costs well under a millisecond of hashing. With scrypt it
    took ~60 ms, so a proxy restart with 1,000 printers dialling back in cost a minute of
    CPU before the last one was served. The bound is generous (hashing 200 times, with
    SQLite opened each time, must stay under 2 s): scrypt needs ~12 s."""
    import time

    devices = Devices(tmp_path)
    dev, secret = devices.add("voron")
    started = time.process_time()
    for _ in range(200):
        assert devices.verify(dev.id, secret) == dev
    assert time.process_time() - started < 2.0


def test_a_scrypt_era_database_still_verifies_and_is_rehashed(tmp_path: Path) -> None:
    """Pins the migration: a registry written before the hash changed (no kdf column,
    scrypt hashes) still lets its devices in with their secrets, refuses wrong ones, and
    stores the fast hash after the first good login."""
    import hashlib
    import time

    salt, secret = b"s" * 16, "old-device-secret"
    old = hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    db = sqlite3.connect(tmp_path / DB_FILE)
    db.execute(
        "CREATE TABLE devices (id TEXT PRIMARY KEY, name TEXT NOT NULL, salt BLOB NOT NULL, "
        "hash BLOB NOT NULL, added REAL NOT NULL)"
    )
    db.execute("INSERT INTO devices VALUES ('dev_old', 'old', ?, ?, ?)", (salt, old, time.time()))
    db.commit()
    db.close()
    devices = Devices(tmp_path)
    assert devices.verify("dev_old", "wrong") is None
    assert devices.verify("dev_old", secret) is not None
    db = sqlite3.connect(tmp_path / DB_FILE)
    (kdf, digest) = db.execute("SELECT kdf, hash FROM devices").fetchone()
    db.close()
    assert kdf == "hmac-sha256" and digest != old
    assert devices.verify("dev_old", secret) is not None


def test_removals_are_read_from_a_log_not_the_whole_registry(tmp_path: Path) -> None:
    """Pins what the proxy's removal poll reads: only removals since the last poll, so its
    cost does not grow with the devices registered (re-reading every row cost 4.5 ms of CPU a
    second with 1,000 devices)."""
    import time

    devices = Devices(tmp_path)
    keep, _ = devices.add("keep")
    gone, _ = devices.add("gone")
    start = time.time()
    assert devices.removed_since(start) == (set(), start)
    assert devices.remove(gone.id)
    removed, since = devices.removed_since(start)
    assert removed == {gone.id} and since >= start
    assert not devices.remove(keep.id + "x")
    later, _ = devices.removed_since(since + 0.001)
    assert later == set()
