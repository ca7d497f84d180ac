"""What each service loads when it starts, read from a fresh interpreter: every module is
megabytes of memory in every process on the board (docs/performance.md), so a service
imports only what its work needs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "av", "aiortc", "aiohttp", "jwt", "cryptography", "sqlite3")


def loaded(module: str) -> set[str]:
    code = (
        f"import json, sys, {module}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize(
    ("service", "allowed"),
    [
        # PyAV, and numpy for the frame loader, only once there is something to encode.
        ("titanium.services.encoder.__main__", set()),
        # The governor needs no frames, no tokens until a token command comes, and aiohttp
        # only to poll a Moonraker that is configured.
        ("titanium.services.governor.__main__", set()),
        # The front door serves HTTP and encodes JPEG with numpy views; PyJWT only with auth.
        ("titanium.services.mjpeg.__main__", {"numpy", "aiohttp"}),
        # Capture draws the test pattern with numpy.
        ("titanium.services.capture.__main__", {"numpy"}),
    ],
)
def test_a_service_imports_only_what_its_work_needs(service: str, allowed: set[str]) -> None:
    """Pins: the encoder loaded numpy at start (+8 MB PSS idle), the governor and the
    front door PyJWT with the cryptography package (+5–7 MB each), auth on or off, and the
    governor aiohttp with no Moonraker to poll."""
    assert loaded(service) <= allowed
