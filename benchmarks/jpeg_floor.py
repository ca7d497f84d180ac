"""The floor the MJPEG figures are held against: libjpeg-turbo encoding test-pattern frames
alone, in the benchmark's own process, with the other load on the machine meanwhile."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

from benchmarks.procstats import CLK_TCK, machine_ticks


@dataclass(frozen=True)
class Floor:
    encode_ms: float  # encode_raw alone, CPU ms per frame (median of the repeats)
    draw_ms: float  # drawing a test-pattern frame and its timecode (capture's own work)
    jpeg_kb: float
    other_load: float  # cores' worth of other processes busy meanwhile (0.1 = 10 % of one)


def measure_floor(
    width: int, height: int, quality: int, frames: int = 150, repeats: int = 5, fps: int = 30
) -> Floor:
    """CPU per frame of the JPEG encode alone, on cache-cold test-pattern frames."""
    import numpy as np

    from titanium.common.timecode import draw_timecode
    from titanium.services.capture.testpattern import TestPatternSource
    from titanium.services.mjpeg.jpeg import encode_raw

    source = TestPatternSource(width, height, fps)
    source.open()
    # More frames than any cache holds, as frames in the shared-memory ring are.
    bufs = [memoryview(bytearray(width * height * 3 // 2)) for _ in range(30)]
    lumas = [np.frombuffer(b, np.uint8, width * height).reshape(height, width) for b in bufs]
    draws, encodes, sizes = [], [], []
    ticks0, own0 = machine_ticks(), time.process_time()
    for _ in range(repeats):
        t = time.process_time()
        for n in range(frames):
            source._draw(bufs[n % len(bufs)], n)
            draw_timecode(lumas[n % len(bufs)], time.time())
        draws.append((time.process_time() - t) / frames)
        t = time.process_time()
        for n in range(frames):
            sizes.append(len(encode_raw(bufs[n % len(bufs)], "YU12", width, height, quality)))
        encodes.append((time.process_time() - t) / frames)
    ticks1, own1 = machine_ticks(), time.process_time()
    ticks = {k: ticks1[k] - ticks0[k] for k in ticks0}
    busy_s = (sum(ticks.values()) - ticks["idle"] - ticks["iowait"]) / CLK_TCK
    wall_s = sum(ticks.values()) / CLK_TCK / (os.cpu_count() or 1)
    return Floor(
        statistics.median(encodes) * 1000,
        statistics.median(draws) * 1000,
        statistics.mean(sizes) / 1024,
        max(0.0, busy_s - (own1 - own0)) / max(wall_s, 1e-9),
    )
