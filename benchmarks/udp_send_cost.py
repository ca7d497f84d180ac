"""What the kernel's loopback send costs per viewer per frame, and what UDP GSO would save:
``n`` 1200-byte datagrams per frame sent one ``sendto`` each, then as one ``sendmsg`` with
UDP_SEGMENT (the kernel splits it), both received by a socket of this process and drained
after each frame. CPU time of this process (send and receive, both sides on loopback).

    python -m benchmarks.udp_send_cost [--frames 3000] [--packets 11]
"""

from __future__ import annotations

import argparse
import os
import socket
import time

UDP_SEGMENT = 103  # linux/udp.h; Python's socket module has no name for it


def _drain(rx: socket.socket) -> int:
    n = 0
    try:
        while True:
            rx.recv(2048)
            n += 1
    except BlockingIOError:
        return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.udp_send_cost")
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--packets", type=int, default=11)
    args = ap.parse_args(argv)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    rx.setblocking(False)
    addr = rx.getsockname()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pkt = os.urandom(1200)
    frames, n = args.frames, args.packets

    t0 = time.process_time()
    got = 0
    for _ in range(frames):
        for _ in range(n):
            tx.sendto(pkt, addr)
        got += _drain(rx)
    each = time.process_time() - t0

    batch = pkt * n
    gso = [(socket.SOL_UDP, UDP_SEGMENT, len(pkt).to_bytes(2, "little"))]
    t0 = time.process_time()
    got_gso = 0
    for _ in range(frames):
        tx.sendmsg([batch], gso, 0, addr)
        got_gso += _drain(rx)
    one = time.process_time() - t0
    print(f"{n} datagrams of {len(pkt)} B per frame, {frames} frames")
    print(f"  one sendto each  {each / frames * 1000:.3f} ms/frame ({got} received)")
    print(f"  one GSO sendmsg  {one / frames * 1000:.3f} ms/frame ({got_gso} received)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
