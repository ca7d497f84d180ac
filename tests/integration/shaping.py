"""A narrow link without netem: rate with tbf, random loss with nftables ``numgen``.

This kernel (and many CI kernels) has no ``sch_netem``, so the only tc shaper at hand is a
token bucket (``tbf``, built in everywhere): it caps the rate and holds at most ``latency``
of queue, dropping what overflows, as a real access link's buffer does. Loss comes from an
nft rule that drops ``numgen random mod 1000 < N`` of the packets. Delay cannot be added
without netem: a test that needs a fixed RTT says so in its skip reason.

Everything lives in the namespaces the test created (a qdisc on a device of theirs, a table
named :data:`SHAPE_TABLE`), so :func:`unshape` (or deleting the namespace) removes it all.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

SHAPE_TABLE = "ti_shape"
# A home uplink's buffer: enough for a burst of a few packets, short enough that a sender
# over the rate sees drops (and a receiver sees them as loss) instead of seconds of queue.
QUEUE_LATENCY_MS = 100
NETEM_MISSING_DELAY = "fixed delay needs the netem qdisc, which this kernel lacks (sch_netem)"


def _run(ns: str | None, argv: Sequence[str], check: bool = True) -> None:
    full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    done = subprocess.run(full, capture_output=True, text=True, timeout=10)
    if check and done.returncode != 0:
        raise AssertionError(f"in {ns or 'root'}: {' '.join(argv)}: {done.stderr.strip()}")


def rate(ns: str | None, dev: str, rate: str) -> None:
    """Traffic leaving ``dev`` in ``ns`` (None: the root namespace, for the root end of a
    test's own veth pair) capped at ``rate`` (tc syntax, e.g. ``1mbit``)."""
    _run(ns, ["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate,
              "burst", "16kb", "latency", f"{QUEUE_LATENCY_MS}ms"])  # fmt: skip


@dataclass
class QueueCount:
    sent: int  # packets
    dropped: int  # packets the queue had no room for


def queue_count(ns: str | None, dev: str) -> QueueCount:
    """What the qdisc of ``dev`` (one :func:`rate` set) has sent and dropped so far."""
    argv = ["tc", "-s", "qdisc", "show", "dev", dev]
    full = ["ip", "netns", "exec", ns, *argv] if ns else argv
    out = subprocess.run(full, capture_output=True, text=True, timeout=10, check=True).stdout
    found = re.search(r"Sent \d+ bytes (\d+) pkt \(dropped (\d+)", out)
    if found is None:
        raise AssertionError(f"no counts in tc's output for {dev}: {out!r}")
    return QueueCount(sent=int(found[1]), dropped=int(found[2]))


def loss(ns: str, dev: str, loss_pct: float, hooks: Sequence[str]) -> None:
    """``loss_pct`` % of the packets through ``dev`` in ``ns`` dropped at random, in each nft
    ``hook``: ``forward`` in a router drops both ways (what leaves through ``dev`` and what
    comes in through it), ``input`` and ``output`` on an end host. (Not ``output`` where a
    test's server answers: a packet dropped there fails the server's own ``sendto`` with
    EPERM, which is no network's loss.) Only in a test's namespace: the root namespace's
    ruleset is not ours."""
    _run(ns, ["nft", "delete", "table", "ip", SHAPE_TABLE], check=False)
    per_mille = round(loss_pct * 10)
    if per_mille <= 0:
        return
    drop = f"numgen random mod 1000 < {per_mille} drop"
    matches = {"input": ["iifname"], "output": ["oifname"], "forward": ["oifname", "iifname"]}
    chains = "; ".join(
        f"chain {hook} {{ type filter hook {hook} priority -20; "
        + "; ".join(f'{m} "{dev}" {drop}' for m in matches[hook])
        + "; }"
        for hook in hooks
    )
    _run(ns, ["nft", f"add table ip {SHAPE_TABLE} {{ {chains}; }}"])


def unshape(ns: str | None, dev: str) -> None:
    _run(ns, ["tc", "qdisc", "del", "dev", dev, "root"], check=False)
    if ns is not None:
        _run(ns, ["nft", "delete", "table", "ip", SHAPE_TABLE], check=False)
