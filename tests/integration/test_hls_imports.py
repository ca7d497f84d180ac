"""The LL-HLS muxer as the front door will load it: no other service, nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_hls_muxer_loads_no_other_service_and_no_heavy_module() -> None:
    """Pins the muxer importing the encoder's package (a service imports no other service,
    STYLE.md) or anything beyond the standard library (megabytes in the front door)."""
    code = (
        "import json, sys, titanium.services.mjpeg.hls.segmenter\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('titanium.')"
        " or m.split('.')[0] in ('numpy', 'av', 'aiohttp', 'msgpack', 'zmq'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    # Besides its own package: the NAL walk every process shares (common/h264.py), nothing.
    shared = {"titanium.services", "titanium.common", "titanium.common.h264"}
    assert all(m.startswith("titanium.services.mjpeg") for m in loaded if m not in shared), loaded
