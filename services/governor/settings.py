"""What a person set on the control socket outlives the governor: ``stream.pause`` (who
paused a camera), ``quality.set`` (the best rung, by label) and their ends
(``stream.resume``, ``quality.auto``), in SQLite under the state directory
(common/state.py: WAL, ``synchronous=FULL``).

Without this, supervisord restarting a crashed governor would start a paused camera
streaming again. A row is written before the command is answered, so a reply means the
setting is on disk; restored at start, a camera no longer in the config, or a rung no
longer in its ladder, is left out with a log line.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from titanium.common.state import open_db
from titanium.services.governor.ladder import Ladder
from titanium.services.governor.policy import CameraState, State

log = logging.getLogger("titanium.governor")
# sqlite3 is imported on first use (common/state.py): a governor whose settings were never
# touched does not load it (tests/integration/test_imports.py).

DB_FILE = "governor.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS cameras (
    id TEXT PRIMARY KEY, best TEXT, paused_by TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class Saved:
    """One camera's settings: the best rung's label (None: automatic), who paused it ('')."""

    best: str | None = None
    paused_by: str = ""


class Settings:
    """The governor's settings in one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def save(self, saved: Mapping[str, Saved]) -> None:
        """Write these cameras' settings in one transaction (committed on return)."""
        db = open_db(self.state_dir, DB_FILE, SCHEMA)
        try:
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO cameras (id, best, paused_by) VALUES (?, ?, ?)",
                    [(cam, s.best, s.paused_by) for cam, s in saved.items()],
                )
        finally:
            db.close()

    def load(self) -> dict[str, Saved]:
        """Every camera's saved settings; none (and no SQLite loaded) before the first save."""
        if not (self.state_dir / DB_FILE).exists():
            return {}
        db = open_db(self.state_dir, DB_FILE, SCHEMA)
        try:
            rows = db.execute("SELECT id, best, paused_by FROM cameras").fetchall()
        finally:
            db.close()
        return {cam: Saved(best, paused_by) for cam, best, paused_by in rows}


def of_state(state: State, ladders: Mapping[str, Ladder], cameras: list[str]) -> dict[str, Saved]:
    """What to save of ``cameras`` in ``state``."""
    out = {}
    for cam in cameras:
        cs = state.cameras.get(cam, CameraState())
        best = None if cs.manual_best is None else ladders[cam].rungs[cs.manual_best].label
        out[cam] = Saved(best, cs.manual_pause)
    return out


def restore(state: State, saved: Mapping[str, Saved], ladders: Mapping[str, Ladder]) -> State:
    """``state`` with the saved settings of the cameras still configured."""
    cams = dict(state.cameras)
    for cam, s in saved.items():
        if cam not in ladders:
            if s != Saved():
                log.info("settings of camera %r ignored: it is no longer in the config", cam)
            continue
        best = None
        if s.best is not None:
            try:
                best = ladders[cam].index(s.best)
            except KeyError:
                best = None
            if best is None or ladders[cam].rungs[best].paused:
                log.info("%s: saved quality %s ignored: not in its ladder now", cam, s.best)
                best = None
        cs = dataclasses.replace(cams.get(cam, CameraState()), manual_pause=s.paused_by)
        if best is not None:
            cs = dataclasses.replace(cs, manual_best=best, index=best, reason="set by hand")
        cams[cam] = cs
        if s.paused_by:
            log.info("%s: restored: paused by %s", cam, s.paused_by)
        if best is not None:
            log.info("%s: restored: quality %s by hand", cam, s.best)
    return dataclasses.replace(state, cameras=cams)


def load_into(state: State, settings: Settings, ladders: Mapping[str, Ladder]) -> State:
    """:func:`restore` from the database; a database that cannot be read is logged and the
    governor starts with no settings rather than not at all."""
    try:
        saved = settings.load()
    except Exception as e:  # sqlite3.Error or OSError: a damaged or unreadable file
        log.error("settings not restored: %s/%s: %s", settings.state_dir, DB_FILE, e)
        return state
    return restore(state, saved, ladders)
