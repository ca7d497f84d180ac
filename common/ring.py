"""The shared-memory frame ring: one segment per stream, written by one producer.

Layout (little endian)::

    ring header, 64 bytes:  magic 'TIRING01' | ring_id u64 | slots u32 | capacity u32 | next_seq u64
    per slot, 64 + capacity bytes:
        lock u64 | seq u64 | mono_ns i64 | wall_ns i64 | size u32 | fourcc 4s | width u16
        | height u16 | flags u32 | (pad) | payload[capacity]

``lock`` is a seqlock: the producer makes it odd before touching a slot and even again when
the slot is complete.  A reader notes the lock, reads, and reads the lock again: a change
means the producer lapped the reader and the read is discarded, never returned.

The segment is a plain file in /dev/shm, created and unlinked only by its producer.  Readers
map it without Python's ``multiprocessing.shared_memory``, whose resource tracker (3.11)
would unlink the segment when a reader exits.

Ordering: the producer publishes a slot reference on ZeroMQ only after ``commit``; the
socket send/receive through the kernel orders the slot's bytes before the reader sees the
reference.  The seqlock guards against a later overwrite, which is detected on x86-64's
total store order; on weaker CPUs (ARM) CPython gives no fence between the two lock reads,
so the check there is best effort against a producer more than ``slots - 1`` frames ahead.
"""

from __future__ import annotations

import mmap
import os
import random
import struct
from dataclasses import dataclass
from pathlib import Path

SHM_DIR = Path("/dev/shm")
MAGIC = b"TIRING01"
RING_HEADER = struct.Struct("<8sQIIQ")
SLOT_HEADER = struct.Struct("<QQqqI4sHHI")
LOCK = struct.Struct("<Q")
NEXT_SEQ_OFFSET = 24
HEADER_SIZE = 64
SLOT_HEADER_SIZE = 64
FLAG_KEYFRAME = 1
FLAG_PLACEHOLDER = 2


class RingError(RuntimeError):
    """A segment that is missing or not a Titanium ring."""


@dataclass(frozen=True)
class SlotInfo:
    """The header of one slot as a reader saw it."""

    slot: int
    seq: int
    mono_ns: int
    wall_ns: int
    size: int
    fourcc: str
    width: int
    height: int
    flags: int

    @property
    def keyframe(self) -> bool:
        return bool(self.flags & FLAG_KEYFRAME)


def _round_up(n: int, to: int = 64) -> int:
    return (n + to - 1) // to * to


class _Mapped:
    def __init__(self, name: str, fd: int, size: int) -> None:
        self.name = name
        self.path = SHM_DIR / name
        self._mm = mmap.mmap(fd, size)
        os.close(fd)
        self.buf = memoryview(self._mm)
        magic, self.ring_id, self.slots, self.capacity, _ = RING_HEADER.unpack_from(self.buf, 0)
        if magic != MAGIC:
            self.close()
            raise RingError(f"{name} is not a Titanium frame ring")
        self.stride = SLOT_HEADER_SIZE + _round_up(self.capacity)

    def _slot_offset(self, slot: int) -> int:
        return HEADER_SIZE + slot * self.stride

    def _lock(self, slot: int) -> int:
        return int(LOCK.unpack_from(self.buf, self._slot_offset(slot))[0])

    @property
    def next_seq(self) -> int:
        return int(struct.unpack_from("<Q", self.buf, NEXT_SEQ_OFFSET)[0])

    def close(self) -> None:
        try:
            self.buf.release()
            self._mm.close()
        except BufferError:  # a caller still holds a view; the mapping goes with it
            pass


class RingWriter(_Mapped):
    """The producer's side: create, write slots in turn, unlink on close."""

    @classmethod
    def create(cls, name: str, slots: int, capacity: int) -> RingWriter:
        path = SHM_DIR / name
        # A producer that was killed (SIGKILL) leaves its segment behind; the ring is
        # ours by name, so the new producer replaces it. Readers still mapping the old
        # one notice the new ring_id in the next FrameReady.
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        size = HEADER_SIZE + slots * (SLOT_HEADER_SIZE + _round_up(capacity))
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
            RING_HEADER.pack_into(mm, 0, MAGIC, random.getrandbits(63), slots, capacity, 0)
            mm.close()
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return cls(name, fd, size)

    def __init__(self, name: str, fd: int, size: int) -> None:
        super().__init__(name, fd, size)
        self._writing: int | None = None
        self.seq = self.next_seq

    def begin(self) -> memoryview:
        """Mark the next slot as being written and return its payload to fill."""
        slot = self.seq % self.slots
        off = self._slot_offset(slot)
        LOCK.pack_into(self.buf, off, self._lock(slot) | 1)
        self._writing = slot
        return self.buf[off + SLOT_HEADER_SIZE : off + SLOT_HEADER_SIZE + self.capacity]

    def commit(
        self,
        size: int,
        fourcc: str,
        width: int,
        height: int,
        mono_ns: int,
        wall_ns: int,
        flags: int = 0,
    ) -> tuple[int, int]:
        """Complete the slot opened by :meth:`begin`; returns (slot, seq)."""
        slot = self._writing
        if slot is None:
            raise RingError("commit without begin")
        if not 0 <= size <= self.capacity:
            raise RingError(f"frame of {size} bytes does not fit a {self.capacity} byte slot")
        off = self._slot_offset(slot)
        lock = self._lock(slot)
        SLOT_HEADER.pack_into(
            self.buf,
            off,
            lock,
            self.seq,
            mono_ns,
            wall_ns,
            size,
            fourcc.encode("ascii"),
            width,
            height,
            flags,
        )
        LOCK.pack_into(self.buf, off, lock + 1)
        seq = self.seq
        self.seq += 1
        struct.pack_into("<Q", self.buf, NEXT_SEQ_OFFSET, self.seq)
        self._writing = None
        return slot, seq

    def abort(self) -> None:
        """Give up the slot opened by :meth:`begin` (a failed capture); it stays invalid."""
        if self._writing is not None:
            off = self._slot_offset(self._writing)
            # Leave it even but with a seq no reader waits for.
            SLOT_HEADER.pack_into(
                self.buf,
                off,
                self._lock(self._writing) + 1,
                2**64 - 1,
                0,
                0,
                0,
                b"\0\0\0\0",
                0,
                0,
                0,
            )
            self._writing = None

    def close(self) -> None:
        super().close()
        self.path.unlink(missing_ok=True)


class RingReader(_Mapped):
    """A consumer's side: attach by name, read slots, never unlink."""

    @classmethod
    def attach(cls, name: str) -> RingReader:
        path = SHM_DIR / name
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise RingError(f"no frame ring {name} (is its producer running?)") from None
        return cls(name, fd, os.fstat(fd).st_size)

    def info(self, slot: int) -> tuple[int, SlotInfo]:
        """The slot's lock value and header, read without checking."""
        off = self._slot_offset(slot)
        lock, seq, mono, wall, size, fourcc, w, h, flags = SLOT_HEADER.unpack_from(self.buf, off)
        return lock, SlotInfo(slot, seq, mono, wall, size, fourcc.decode("ascii"), w, h, flags)

    def open_slot(
        self, slot: int, seq: int | None = None
    ) -> tuple[int, SlotInfo, memoryview] | None:
        """Start a zero-copy read: (lock, header, payload view), or None when the slot is
        never written, being written or no longer holds ``seq``. Finish with :meth:`still_valid`."""
        lock, info = self.info(slot)
        if (
            lock == 0
            or lock & 1
            or (seq is not None and info.seq != seq)
            or info.size > self.capacity
        ):
            return None
        off = self._slot_offset(slot) + SLOT_HEADER_SIZE
        return lock, info, self.buf[off : off + info.size]

    def still_valid(self, slot: int, lock: int) -> bool:
        """True when the slot was not touched since :meth:`open_slot` returned ``lock``."""
        return self._lock(slot) == lock

    def read(self, slot: int, seq: int | None = None) -> tuple[SlotInfo, bytes] | None:
        """A checked copy of the slot: (header, payload), or None when it was overwritten."""
        opened = self.open_slot(slot, seq)
        if opened is None:
            return None
        lock, info, view = opened
        data = bytes(view)
        view.release()
        return (info, data) if self.still_valid(slot, lock) else None

    def latest_slot(self) -> tuple[int, int] | None:
        """(slot, seq) of the newest committed frame, or None before the first."""
        nxt = self.next_seq
        if nxt == 0:
            return None
        return (nxt - 1) % self.slots, nxt - 1


class RingFollower:
    """A consumer's reader of the ring its producer's messages name: attached on first
    use, and again when the producer makes a new ring (a restart or a new frame size gives
    the ring a new ``ring_id``, often under the same name)."""

    def __init__(self) -> None:
        self.reader: RingReader | None = None

    def follow(self, name: str, ring_id: int) -> RingReader:
        """The reader of ring ``name`` with ``ring_id``; RingError when it is gone."""
        if self.reader is not None and self.reader.ring_id == ring_id:
            return self.reader
        self.close()
        self.reader = RingReader.attach(name)
        return self.reader

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
