"""Probes that run a command: ``vcgencmd get_throttled`` through the stand-in in
tests/fixtures/bin (the only fakes), used when the firmware's sysfs file is missing."""

from __future__ import annotations

from pathlib import Path

from titanium.services.governor.probes import ThrottledProbe

VCGENCMD = Path(__file__).resolve().parents[1] / "fixtures" / "bin" / "vcgencmd"


def test_vcgencmd_when_the_sysfs_file_is_missing(tmp_path: Path) -> None:
    probe = ThrottledProbe(tmp_path / "get_throttled", (str(VCGENCMD), "get_throttled"))
    got = probe.read()
    assert got is not None and got.value == 0x50000
    assert got.now == () and got.since_boot == ("under_voltage", "throttled")


def test_a_vcgencmd_that_fails_gives_no_flags(tmp_path: Path) -> None:
    probe = ThrottledProbe(tmp_path / "get_throttled", (str(VCGENCMD), "get_mem"))
    assert probe.read() is None
    assert probe.read() is None
