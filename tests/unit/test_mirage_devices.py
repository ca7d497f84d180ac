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
