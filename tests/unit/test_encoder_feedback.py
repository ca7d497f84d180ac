"""When the encoder works, when it makes IDRs and which bitrate it aims at."""

from __future__ import annotations

import random

from titanium.services.encoder.feedback import BITRATE_WINDOW, MAX_HINTS, EncodeControl

MAX, FLOOR = 2_000_000, 250_000


def test_active_only_while_recent_demand_is_above_zero() -> None:
    c = EncodeControl(MAX, FLOOR)
    assert not c.active(0.0)
    c.demand(2, 10.0)
    assert c.active(10.0) and c.active(12.9)
    assert not c.active(13.5), "the WebRTC service went silent: nobody is left"
    c.demand(0, 14.0)
    assert not c.active(14.0)


def test_first_frame_after_going_active_is_an_idr() -> None:
    c = EncodeControl(MAX, FLOOR)
    c.demand(1, 0.0)
    assert c.force_idr(0.0)
    c.idr_sent(0.0)
    assert not c.force_idr(0.1)
    c.went_idle()
    assert c.force_idr(0.2)


def test_keyframe_requests_are_coalesced_and_rate_limited() -> None:
    c = EncodeControl(MAX, FLOOR)
    c.force_idr(0.0)
    c.idr_sent(0.0)
    c.keyframe_wanted(0.1)
    c.keyframe_wanted(0.15)  # a burst of PLIs
    assert not c.force_idr(0.2), "an IDR went out 0.2 s ago"
    assert c.force_idr(0.5)
    c.idr_sent(0.5)
    assert not c.force_idr(0.6), "both requests were answered by one IDR"
    c.keyframe_wanted(2.0)
    assert c.force_idr(2.0)


def test_a_scheduled_idr_answers_a_pending_request() -> None:
    c = EncodeControl(MAX, FLOOR)
    c.force_idr(0.0)
    c.keyframe_wanted(1.0)
    c.idr_sent(1.01)  # the GOP's own IDR
    assert not c.force_idr(1.6)


def test_bitrate_follows_the_weakest_recent_hint_within_bounds() -> None:
    c = EncodeControl(MAX, FLOOR)
    c.bitrate_hint(1_500_000, 0.0)
    c.bitrate_hint(800_000, 0.5)  # another viewer, a worse link
    assert c.next_bitrate(1.0) == 800_000
    c.bitrate_hint(50_000, 2.0)
    assert c.next_bitrate(3.0) is None, "at most one change per 5 s"
    assert c.next_bitrate(6.0) == FLOOR
    c.bitrate_hint(9_000_000, 11.5)
    assert c.next_bitrate(11.5) == MAX, "the low hints are older than the window"


def test_small_moves_and_silence_change_nothing() -> None:
    c = EncodeControl(MAX, FLOOR)
    assert c.next_bitrate(0.0) is None
    c.bitrate_hint(1_950_000, 1.0)
    assert c.next_bitrate(1.0) is None
    c.bitrate_hint(1_000_000, 2.0)
    assert c.next_bitrate(2.0) == 1_000_000
    assert c.next_bitrate(30.0) == MAX, "no hints for a while: back to the configured rate"


def test_demands_of_two_sources_add_up_and_time_out_each_on_its_own() -> None:
    """Pins the single viewer count the encoder kept per camera: the front door's demand
    replaced the WebRTC service's, so one source going to 0 stopped the encoder while the
    other's viewers still watched."""
    c = EncodeControl(MAX, FLOOR)
    c.demand(2, 0.0, "webrtc")
    c.demand(1, 0.5, "mjpeg")
    assert c.active(0.5) and c.viewers == 3
    c.demand(0, 1.0, "mjpeg")
    assert c.active(1.0) and c.viewers == 2, "the WebRTC viewers still watch"
    c.demand(1, 1.5, "mjpeg")
    c.demand(0, 2.0, "webrtc")
    assert c.active(2.0) and c.viewers == 1, "the front door's viewer still watches"
    c.demand(2, 3.0, "webrtc")
    # The front door went silent (its last demand at 1.5); the WebRTC service did not.
    assert c.active(4.6) and c.viewers == 2
    assert not c.active(6.5), "both sources went silent"


def test_a_remb_flood_keeps_a_bounded_window_and_its_minimum() -> None:
    """Pins: every hint was kept for the window, and pruned only while encoding, so a
    browser sending REMBs as fast as it liked grew the encoder's list without bound."""
    rng = random.Random(14)
    c = EncodeControl(MAX, FLOOR)
    sent: list[tuple[float, int]] = []
    for i in range(100_000):
        now = i * 0.0001  # 10 000 a second, for 10 s
        bitrate = rng.randrange(FLOOR, MAX)
        c.bitrate_hint(bitrate, now)
        sent.append((now, bitrate))
        assert c.hints_kept <= MAX_HINTS
    now = sent[-1][0]
    weakest = min(b for t, b in sent if now - t <= BITRATE_WINDOW)
    assert c.next_bitrate(now) == weakest


def test_rising_hints_at_the_cap_keep_the_weakest() -> None:
    c = EncodeControl(MAX, FLOOR)
    for i in range(1000):
        c.bitrate_hint(FLOOR + 1000 * i, i * 0.001)
    assert c.hints_kept == MAX_HINTS
    assert c.next_bitrate(1.0) == FLOOR
