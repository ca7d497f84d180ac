"""The front door's token buckets (services/mjpeg/limits.py), on a clock the test moves."""

from __future__ import annotations

import pytest

from titanium.common.config import LimitsConfig
from titanium.services.mjpeg.limits import Limits, RateLimit

A = ("address", "192.0.2.1")
B = ("address", "192.0.2.2")
T = ("token", "0123abcd")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate_and_a_refusal_says_when_to_come_back() -> None:
    clock = Clock()
    bucket = RateLimit(2.0, 3, clock)
    assert [bucket.take([A]) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take([A])
    assert wait == pytest.approx(0.5)  # one token at 2 a second
    assert bucket.take([B]) == 0.0, "another client is not held back"
    clock.now += 0.5
    assert bucket.take([A]) == 0.0
    assert bucket.take([A]) > 0


def test_a_request_needs_both_its_address_and_its_token_and_a_refusal_costs_nothing() -> None:
    clock = Clock()
    bucket = RateLimit(1.0, 2, clock)
    assert bucket.take([A, T]) == 0.0
    assert bucket.take([B, T]) == 0.0
    # The token is spent, from any address; the address is not charged for the refusal.
    assert bucket.take([B, T]) > 0
    assert bucket.take([B]) == 0.0


def test_idle_clients_are_dropped_and_the_table_stays_bounded() -> None:
    """Pins unbounded growth: a key per address ever seen would grow for as long as the
    front door runs."""
    clock = Clock()
    bucket = RateLimit(10.0, 5, clock, max_keys=50)
    for i in range(40):
        bucket.take([("address", f"198.51.100.{i}")])
    assert len(bucket) == 40
    clock.now += 0.5  # refill time, 5 / 10 s: every bucket is full again
    bucket.take([A])
    assert len(bucket) == 1
    for i in range(200):
        bucket.take([("address", f"203.0.113.{i}")])
    assert len(bucket) == 50


def test_a_refusal_is_a_429_with_whole_seconds_and_is_counted() -> None:
    lim = Limits(LimitsConfig(2.0, 20, 60.0, 60, 20, 40))
    exc = lim.refuse("snapshot", "too many snapshots", 0.2)
    assert exc.status == 429
    assert exc.headers["Retry-After"] == "1"
    assert lim.refuse("signalling", "too many", 2.5).headers["Retry-After"] == "3"
    assert lim.describe()["refused"] == {"signalling": 1, "snapshot": 1, "sessions": 0}
