"""The Raspberry Pi firmware's throttling flags (``vcgencmd get_throttled``, or the sysfs
file ``get_throttled`` of the firmware driver), decoded through one named table."""

from __future__ import annotations

import re
from dataclasses import dataclass

# bit -> (name, what it means). Bits 0-3 are now; 16-19 the same events since boot.
THROTTLED_FLAGS: dict[int, tuple[str, str]] = {
    0: ("under_voltage", "under-voltage detected"),
    1: ("frequency_capped", "arm frequency capped"),
    2: ("throttled", "currently throttled"),
    3: ("soft_temp_limit", "soft temperature limit active"),
    16: ("under_voltage", "under-voltage has occurred"),
    17: ("frequency_capped", "arm frequency capping has occurred"),
    18: ("throttled", "throttling has occurred"),
    19: ("soft_temp_limit", "soft temperature limit has occurred"),
}
SINCE_BOOT_SHIFT = 16


@dataclass(frozen=True)
class Throttled:
    value: int
    now: tuple[str, ...]  # flag names set now, in table order
    since_boot: tuple[str, ...]

    def describe(self) -> str:
        return ", ".join(THROTTLED_FLAGS[b][1] for b in THROTTLED_FLAGS if self.value >> b & 1)


def decode_throttled(value: int) -> Throttled:
    now = tuple(
        name
        for bit, (name, _) in THROTTLED_FLAGS.items()
        if bit < SINCE_BOOT_SHIFT and value >> bit & 1
    )
    past = tuple(
        name
        for bit, (name, _) in THROTTLED_FLAGS.items()
        if bit >= SINCE_BOOT_SHIFT and value >> bit & 1
    )
    return Throttled(value, now, past)


def parse_throttled(text: str) -> Throttled:
    """``throttled=0x50005`` (vcgencmd) or ``50005`` (sysfs, hex without 0x)."""
    m = re.fullmatch(r"\s*(?:throttled=)?(?:0x)?([0-9a-fA-F]+)\s*", text)
    if not m:
        raise ValueError(f"not a get_throttled value: {text.strip()[:40]!r}")
    return decode_throttled(int(m.group(1), 16))
