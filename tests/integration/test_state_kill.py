"""Nothing committed is lost when the writer of a database dies: a process writing each of
Titanium's SQLite databases (tokens, Mirage's devices, the governor's settings) in a tight
loop is killed with SIGKILL at seeded random moments, many times over one database; after
each kill the database passes ``PRAGMA integrity_check`` and holds every write the writer
printed as committed (it prints after commit returns).

A power cut cannot be had here: the page cache survives a SIGKILL, so these kills test
SQLite's WAL (no half transaction, committed frames replayed) and Titanium's use of it, not
the fsyncs. What a power cut needs, ``synchronous=FULL``, is checked as the setting it is.

``TITANIUM_KILL_ROUNDS`` (default 12) sets the kills per database.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from titanium.common.state import open_db
from titanium.common.tokens import Tokens
from titanium.mirage.devices import Devices
from titanium.services.governor.settings import Settings

ROUNDS = int(os.environ.get("TITANIUM_KILL_ROUNDS", "12"))

# Each writer prints "ready" once its imports are done (PyJWT's take ~0.2 s, longer than
# most delays), then one line per committed write: "<kind> <key>".
WRITERS = {
    "tokens": """
import jwt, sqlite3
from titanium.common.tokens import Tokens
t = Tokens(state)
print("ready", flush=True)
for i in range(10**9):
    token, grant = t.create(f"writer {i}")
    print("issued", grant.id, flush=True)
    if i % 2:
        t.revoke(grant.id)
        print("revoked", grant.id, flush=True)
""",
    "devices": """
import sqlite3
from titanium.mirage.devices import Devices
d = Devices(state)
print("ready", flush=True)
for i in range(10**9):
    device, _ = d.add(f"printer {i}")
    print("added", device.id, flush=True)
    if i % 2:
        d.remove(device.id)
        print("removed", device.id, flush=True)
""",
    "settings": """
import os, sqlite3
from titanium.services.governor.settings import Saved, Settings
s = Settings(state)
print("ready", flush=True)
base = os.getpid() * 10**6
for i in range(10**9):
    cam = f"cam{base + i}"
    s.save({cam: Saved(best="360p5" if i % 2 else None, paused_by=str(i))})
    print("saved", cam, flush=True)
""",
}
DB_FILES = {"tokens": "tokens.sqlite", "devices": "devices.sqlite", "settings": "governor.sqlite"}


def run_and_kill(kind: str, state: Path, delay: float) -> list[tuple[str, str]]:
    """Start the writer, SIGKILL it ``delay`` s after it is ready; the writes it reported."""
    code = f"from pathlib import Path\nstate = Path({str(state)!r})\n" + WRITERS[kind]
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = b""
    try:
        ready = proc.stdout.readline()
        assert ready == b"ready\n", f"writer did not start: {ready!r}"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    lines = out.split(b"\n")[:-1]  # the last one may have been cut by the kill
    return [tuple(line.decode().split(" ", 1)) for line in lines]  # type: ignore[misc]


def check(kind: str, state: Path, reported: list[tuple[str, str]]) -> None:
    """The database is whole and holds every reported write, read through its own API."""
    if not (state / DB_FILES[kind]).exists():  # killed before its first write
        assert not reported
        return
    db = sqlite3.connect(state / DB_FILES[kind])
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
    wanted: dict[str, set[str]] = {}
    for what, key in reported:
        wanted.setdefault(what, set()).add(key)
    if kind == "tokens":
        tokens = Tokens(state)
        issued = {t["id"] for t in tokens.list()}
        assert wanted.get("issued", set()) <= issued
        assert wanted.get("revoked", set()) <= tokens.refresh()
    elif kind == "devices":
        devices = Devices(state)
        ids = devices.ids()
        gone, _ = devices.removed_since(0)
        # Killed between a removal's commit and its line, a device is gone unreported.
        assert wanted.get("added", set()) - wanted.get("removed", set()) <= ids | gone
        assert wanted.get("removed", set()) <= gone and not gone & ids
    else:
        assert wanted.get("saved", set()) <= set(Settings(state).load())


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_writer_killed_mid_write_loses_no_committed_write(kind: str, tmp_path: Path) -> None:
    rng = random.Random(f"{kind}-14")  # seeded: a failure is repeated by running again
    state = tmp_path / "state"
    reported: list[tuple[str, str]] = []
    for _ in range(ROUNDS):
        # From "at once" (often inside the first transaction) to some hundred writes in.
        reported += run_and_kill(kind, state, rng.choice([0.0, rng.uniform(0.0, 0.3)]))
        check(kind, state, reported)
    assert len(reported) > ROUNDS, f"the writer hardly wrote: {len(reported)} writes"
    print(f"{kind}: {ROUNDS} kills, {len(reported)} committed writes checked")


def test_every_database_is_opened_for_power_cuts(tmp_path: Path) -> None:
    """WAL, and the WAL fsynced at every commit (synchronous=FULL, 2): with NORMAL a power
    cut may undo the last commits, a revocation or a pause among them."""
    db = open_db(tmp_path, "x.sqlite", "CREATE TABLE IF NOT EXISTS t (x)")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA synchronous").fetchone() == (2,)
    finally:
        db.close()
