"""What survives a restart lives under the state directory, in SQLite (stdlib, WAL): the
token database, the Mirage proxy's devices, the governor's settings. One way to open such
a database.

Durability: a transaction is in the WAL file when commit returns, so a writer killed
(SIGKILL, OOM) at any moment loses nothing it committed and leaves no half transaction: the
next open replays or ignores the WAL's frames by their checksums. ``synchronous=FULL`` also
fsyncs the WAL on every commit, so a commit survives a power cut too (NORMAL, SQLite's
usual WAL choice, may lose the last commits then). Writes here are rare (a token issued, a
device added, a camera paused), so the fsync costs nothing that matters; a revocation or a
pause that a power cut undid would.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3


def open_db(state_dir: Path, filename: str, schema: str) -> sqlite3.Connection:
    """The database ``filename`` in ``state_dir`` (made owner-only if new), WAL, with
    ``schema`` (CREATE … IF NOT EXISTS statements) applied. sqlite3 is imported here, so a
    process that never opens one never loads it."""
    import sqlite3

    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = sqlite3.connect(state_dir / filename, timeout=5)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db
