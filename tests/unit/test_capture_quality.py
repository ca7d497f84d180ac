"""What capture does with a QualityCommand that needs no camera: thinning a source that
cannot slow down, and the test pattern drawing at whatever size it is asked for."""

from __future__ import annotations

import numpy as np

from titanium.services.capture.quality import Pacer, Target
from titanium.services.capture.testpattern import TestPatternSource

MS = 1_000_000


def times(fps: float, seconds: float, jitter_ms: float = 0.0) -> list[int]:
    rng = np.random.default_rng(3)
    n = int(fps * seconds)
    return [int(i * 1e9 / fps + rng.uniform(-jitter_ms, jitter_ms) * MS) for i in range(n)]


def test_pacer_thins_a_30_fps_camera_evenly() -> None:
    for target, expected in ((15, 150), (5, 50), (10, 100)):
        pacer = Pacer(target)
        kept = [t for t in times(30, 10, jitter_ms=3) if pacer.take(t)]
        assert abs(len(kept) - expected) <= 1, (target, len(kept))
        gaps = np.diff(kept) / MS
        assert gaps.min() > 1000 / target - 10, (target, gaps.min())


def test_pacer_does_not_burst_after_a_stall() -> None:
    pacer = Pacer(5)
    frames = times(30, 1) + [t + 3000 * MS for t in times(30, 1)]
    kept = [t for t in frames if pacer.take(t)]
    assert len(kept) <= 11


def test_pacer_at_zero_lets_everything_through() -> None:
    pacer = Pacer(0)
    assert all(pacer.take(t) for t in times(30, 1))


def test_a_repeated_command_is_the_same_stream() -> None:
    a = Target(640, 480, 15, reason="cpu")
    assert a.same_stream(Target(640, 480, 15, reason="calm"))
    assert not a.same_stream(Target(640, 480, 15, paused=True))


def test_test_pattern_draws_at_a_new_size_after_reopening() -> None:
    src = TestPatternSource(640, 480, 30)
    assert (src.open().width, src.open().height) == (640, 480)
    src.close()
    src.width, src.height, src.fps = 480, 360, 5
    fmt = src.open()
    assert (fmt.width, fmt.height, fmt.fps, fmt.frame_capacity) == (
        480,
        360,
        5.0,
        480 * 360 * 3 // 2,
    )
    buf = bytearray(fmt.frame_capacity)
    frame = src.read_into(memoryview(buf), 1.0)
    assert frame.size == len(buf) and np.frombuffer(buf, np.uint8).std() > 10
