"""The shared-memory ring: slots, the seqlock across processes, and who unlinks."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import uuid
from collections.abc import Iterator

import pytest

from titanium.common.ring import SHM_DIR, RingError, RingReader, RingWriter

CAPACITY = 1 << 20


@pytest.fixture
def name() -> Iterator[str]:
    n = f"titanium-test-{uuid.uuid4().hex[:8]}"
    yield n
    (SHM_DIR / n).unlink(missing_ok=True)


def write(ring: RingWriter, payload: bytes, fourcc: str = "MJPG") -> tuple[int, int]:
    view = ring.begin()
    view[: len(payload)] = payload
    view.release()
    return ring.commit(len(payload), fourcc, 640, 480, time.monotonic_ns(), time.time_ns())


def test_reader_gets_what_the_writer_committed(name: str) -> None:
    ring = RingWriter.create(name, 4, CAPACITY)
    reader = RingReader.attach(name)
    assert reader.latest_slot() is None
    slot, seq = write(ring, b"hello", "YUYV")
    got = reader.read(slot, seq)
    assert got is not None
    info, data = got
    assert (data, info.fourcc, info.width, info.height, info.seq) == (b"hello", "YUYV", 640, 480, 0)
    assert reader.latest_slot() == (slot, seq)
    assert reader.ring_id == ring.ring_id
    reader.close()
    ring.close()


def test_a_lapped_slot_is_refused_by_seq(name: str) -> None:
    ring = RingWriter.create(name, 2, CAPACITY)
    reader = RingReader.attach(name)
    slot, seq = write(ring, b"first")
    write(ring, b"second")
    write(ring, b"third")  # reuses the first slot
    assert reader.read(slot, seq) is None
    reader.close()
    ring.close()


def test_a_slot_being_written_is_not_readable(name: str) -> None:
    ring = RingWriter.create(name, 2, CAPACITY)
    reader = RingReader.attach(name)
    slot, seq = write(ring, b"a")
    write(ring, b"b")
    view = ring.begin()  # the writer is inside slot 0 now
    assert reader.open_slot(slot) is None
    view.release()
    ring.abort()
    assert reader.read(slot, seq) is None  # aborted: no frame there any more
    reader.close()
    ring.close()


def test_only_the_producer_unlinks(name: str) -> None:
    ring = RingWriter.create(name, 2, CAPACITY)
    RingReader.attach(name).close()
    assert (SHM_DIR / name).exists()
    ring.close()
    assert not (SHM_DIR / name).exists()
    with pytest.raises(RingError, match="no frame ring"):
        RingReader.attach(name)


def test_a_new_producer_replaces_a_dead_ones_segment(name: str) -> None:
    old = RingWriter.create(name, 2, CAPACITY)
    new = RingWriter.create(name, 2, CAPACITY)  # as after a SIGKILL and restart
    assert new.ring_id != old.ring_id
    assert RingReader.attach(name).ring_id == new.ring_id
    new.close()


def _writer(name: str, frames: int, started: mp.synchronize.Event) -> None:
    ring = RingWriter.create(name, 2, CAPACITY)
    patterns = [bytes([i]) * CAPACITY for i in range(8)]
    started.set()
    for i in range(frames):
        view = ring.begin()
        view[:] = patterns[i % 8]
        view.release()
        ring.commit(CAPACITY, "YUYV", 1, 1, 0, 0)
    time.sleep(0.5)
    ring.close()


def test_seqlock_detects_every_torn_read_across_processes(name: str) -> None:
    """A reader in this process copies 1 MiB slots while a writer process rewrites them
    flat out: every read either is one whole frame (all bytes = seq % 8) or is refused."""
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    writer = ctx.Process(target=_writer, args=(name, 3000, started))
    writer.start()
    assert started.wait(20)
    reader = RingReader.attach(name)
    good = refused = 0
    deadline = time.monotonic() + 20
    while writer.is_alive() and time.monotonic() < deadline:
        for slot in range(reader.slots):
            opened = reader.open_slot(slot)
            if opened is None:
                refused += 1
                continue
            lock, info, view = opened
            data = bytes(view)
            view.release()
            if not reader.still_valid(slot, lock):
                refused += 1
                continue
            good += 1
            assert data == bytes([info.seq % 8]) * CAPACITY, f"torn read returned, seq {info.seq}"
    writer.join(10)
    reader.close()
    assert good > 0
    assert refused > 0, "the writer never overlapped a read: the test proved nothing"
    assert os.path.exists(SHM_DIR / name) is False
