"""Video files for the file source, made here with Debian's ffmpeg from its test source."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def make_clip(path: Path, rate: float, seconds: float = 1, extra_filters: str = "") -> Path:
    """A 320x240 clip of ffmpeg's moving test picture at ``rate`` fps (``extra_filters``
    appended to its filter chain, e.g. noise); the test is skipped without ffmpeg."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs Debian's ffmpeg to make a test clip")
    source = f"testsrc2=size=320x240:rate={rate:g}" + (f",{extra_filters}" if extra_filters else "")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", source,
         "-t", f"{seconds:g}", "-pix_fmt", "yuv420p", str(path)],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path
