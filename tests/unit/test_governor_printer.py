"""The printer's state from Hydrogen's pushes and Moonraker's replies, and which source
wins when they disagree."""

from __future__ import annotations

from typing import Any

import pytest

from titanium.services.governor.printer import PrinterStates, from_hydrogen, from_moonraker


def reply(state: str, layer: Any = None, progress: Any = 0.5) -> dict[str, Any]:
    stats = {"state": state, "info": {"current_layer": layer, "total_layer": None}}
    return {"result": {"status": {"print_stats": stats, "virtual_sdcard": {"progress": progress}}}}


def test_moonraker_states_and_layers() -> None:
    got = from_moonraker(reply("printing", 1))
    assert (got.state, got.first_layer, got.layer, got.progress) == ("printing", True, 1, 0.5)
    assert not from_moonraker(reply("printing", None)).first_layer  # slicer sent no layers
    assert from_moonraker(reply("complete", 80)).state == "idle"
    assert from_moonraker(reply("paused", 1)).first_layer is False
    assert from_moonraker(reply("standby", progress=None)).progress is None


@pytest.mark.parametrize(
    "doc", [{}, {"result": {}}, {"result": {"status": {}}}, reply("exploded"), [1], None]
)
def test_moonraker_replies_that_are_not_a_state(doc: Any) -> None:
    with pytest.raises(ValueError):
        from_moonraker(doc)


def test_hydrogen_first_layer_from_layer_or_flag() -> None:
    assert from_hydrogen("printing", None, 1, None).first_layer
    assert not from_hydrogen("printing", None, 2, None).first_layer
    assert from_hydrogen("printing", True, 7, None).first_layer
    assert not from_hydrogen("idle", True, 1, None).first_layer


def test_the_busiest_source_wins_and_a_silent_one_is_forgotten() -> None:
    states = PrinterStates(clock=lambda: 100.0)
    assert states.current().state == "unknown"
    states.update(from_hydrogen("idle", None, None, None), "hydrogen")
    states.update(from_moonraker(reply("printing", 1)), "moonraker")
    assert (states.current().source, states.current().first_layer) == ("moonraker", True)
    states.update(None, "moonraker")
    assert states.current().state == "idle"
    assert states.describe()["sources"] == {
        "hydrogen": {"state": "idle", "layer": None, "updated": 100.0}
    }
