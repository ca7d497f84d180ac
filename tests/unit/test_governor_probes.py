"""The governor's probes on the recorded trees of tests/fixtures (the only fakes), and the
named table of the Pi's throttling flags."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from titanium.services.governor.probes import (
    CpuProbe,
    LoadProbe,
    MemoryProbe,
    ThermalZones,
    ThrottledProbe,
)
from titanium.services.governor.throttled import decode_throttled, parse_throttled

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PI4 = FIXTURES / "pi4" / "sys"
THROTTLED = PI4 / "devices" / "platform" / "soc" / "soc:firmware" / "get_throttled"


def test_cpu_share_between_two_reads_of_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    shutil.copy(FIXTURES / "proc" / "stat.1", stat)
    probe = CpuProbe(stat)
    assert probe.read() is None  # nothing to compare with yet
    shutil.copy(FIXTURES / "proc" / "stat.2", stat)
    reading = probe.read()
    assert reading is not None
    # iowait counts as idle: a CPU waiting for the SD card is free for the printer.
    assert reading.total == pytest.approx(66.7)
    assert reading.per_cpu == (95.0, 10.0)


def test_memory_and_load() -> None:
    mem = MemoryProbe(FIXTURES / "proc" / "meminfo").read()
    assert (mem.total_mb, mem.available_mb) == (pytest.approx(3793.1, abs=0.1), 400.0)
    assert LoadProbe(FIXTURES / "proc" / "loadavg").read() == (1.52, 0.98, 0.61)


def test_thermal_zones_by_type_skipping_unreadable_ones() -> None:
    pi = ThermalZones(PI4 / "class" / "thermal").read()
    assert [(t.sensor, t.celsius) for t in pi] == [("cpu-thermal", 51.121)]
    pc = ThermalZones(FIXTURES / "x86" / "sys" / "class" / "thermal").read()
    assert [(t.sensor, t.celsius) for t in pc] == [("acpitz", 27.8), ("x86_pkg_temp", 45.0)]
    assert ThermalZones(FIXTURES / "nowhere").read() == []


def test_throttled_from_the_firmware_file() -> None:
    got = ThrottledProbe(THROTTLED, ("no-such-vcgencmd",)).read()
    assert got is not None and got.value == 0x50005
    assert got.now == ("under_voltage", "throttled")
    assert got.since_boot == ("under_voltage", "throttled")
    assert "under-voltage detected" in got.describe()


def test_no_file_and_no_command_means_no_flags(tmp_path: Path) -> None:
    assert ThrottledProbe(tmp_path / "get_throttled", ("no-such-vcgencmd",)).read() is None


@pytest.mark.parametrize(
    ("text", "now", "past"),
    [
        ("throttled=0x0\n", (), ()),
        ("0\n", (), ()),
        ("throttled=0x80008", ("soft_temp_limit",), ("soft_temp_limit",)),
        ("20002", ("frequency_capped",), ("frequency_capped",)),
        ("throttled=0xe0000", (), ("frequency_capped", "throttled", "soft_temp_limit")),
    ],
)
def test_flag_table(text: str, now: tuple[str, ...], past: tuple[str, ...]) -> None:
    got = parse_throttled(text)
    assert (got.now, got.since_boot) == (now, past)


def test_garbage_is_not_a_value() -> None:
    with pytest.raises(ValueError, match="not a get_throttled value"):
        parse_throttled("error=1 error_msg=oops")
    assert decode_throttled(1 << 2).describe() == "currently throttled"
