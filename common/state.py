"""What survives a restart lives under the state directory, in SQLite (stdlib, WAL): the
token database, the Mirage proxy's devices. One way to open such a database."""

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
    db.executescript(schema)
    return db
