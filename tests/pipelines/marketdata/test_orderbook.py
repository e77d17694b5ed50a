"""OrderBook: Binance spot and USD-M sync rules, gaps and resync, level removal, trust (crossed, stale).

The real-data check against the recorded Binance capture's own bookTicker stream is in
test_orderbook_capture.py.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.domain.marketdata import BookDiff, BookLevel, BookSnapshot
from pipelines.marketdata.orderbook import (
    BookNotSyncedError,
    BookState,
    DiffResult,
    OrderBook,
    SyncRule,
)

T0 = 1_723_161_600_000_000  # an exchange time, µs UTC


def snap(
    last_id: int | None,
    bids: Sequence[tuple[float, float]],
    asks: Sequence[tuple[float, float]],
    ts_us: int | None = T0,
) -> BookSnapshot:
    return BookSnapshot(
        "binance",
        "BTC/USDT",
        ts_us,
        last_id,
        tuple(BookLevel(p, q) for p, q in bids),
        tuple(BookLevel(p, q) for p, q in asks),
    )


def diff(
    first: int,
    final: int,
    bids: Sequence[tuple[float, float]] = (),
    asks: Sequence[tuple[float, float]] = (),
    pu: int | None = None,
    ts_us: int = T0,
) -> BookDiff:
    return BookDiff(
        "binance",
        "BTC/USDT",
        ts_us,
        first,
        final,
        pu,
        tuple(BookLevel(p, q) for p, q in bids),
        tuple(BookLevel(p, q) for p, q in asks),
    )


SNAP_100 = snap(100, bids=[(99.0, 1.0), (98.0, 2.0)], asks=[(101.0, 1.5), (102.0, 3.0)])


def synced_spot_book() -> OrderBook:
    book = OrderBook("BTC/USDT", SyncRule.SPOT)
    book.apply_snapshot(SNAP_100)
    assert book.apply_diff(diff(95, 101, bids=[(99.5, 0.5)])) is DiffResult.APPLIED
    return book


# ---- spot sync rules ---------------------------------------------------------------------------------
def test_spot_snapshot_alone_is_not_served_until_a_diff_bridges_it() -> None:
    book = OrderBook("BTC/USDT", SyncRule.SPOT)
    book.apply_snapshot(SNAP_100)

    assert book.state is BookState.AWAITING_FIRST_DIFF
    with pytest.raises(BookNotSyncedError):
        book.best_bid()


def test_spot_drops_diffs_already_in_snapshot_then_applies_the_bridging_one() -> None:
    book = OrderBook("BTC/USDT", SyncRule.SPOT)
    book.apply_snapshot(SNAP_100)

    old = book.apply_diff(diff(90, 100, bids=[(99.0, 7.0)]))  # u <= lastUpdateId: already in the snapshot
    bridging = book.apply_diff(diff(98, 105, bids=[(99.0, 4.0)]))  # U <= 101 <= u

    assert (old, bridging) == (DiffResult.DROPPED, DiffResult.APPLIED)
    assert book.state is BookState.SYNCED
    assert book.best_bid() == BookLevel(99.0, 4.0)
    assert book.last_update_id == 105


def test_spot_first_diff_past_the_snapshot_is_a_gap() -> None:
    book = OrderBook("BTC/USDT", SyncRule.SPOT)
    book.apply_snapshot(SNAP_100)

    result = book.apply_diff(diff(102, 110))  # U = 102 > lastUpdateId + 1: update 101 is missing

    assert result is DiffResult.GAP
    assert book.state is BookState.NEEDS_RESYNC
    assert "101" in book.status().reason


def test_spot_gap_refuses_prices_until_a_new_snapshot_resyncs() -> None:
    book = synced_spot_book()

    gap = book.apply_diff(diff(103, 104, asks=[(101.0, 9.0)]))  # expected U = 102
    later = book.apply_diff(diff(105, 106, asks=[(101.0, 8.0)]))

    assert (gap, later) == (DiffResult.GAP, DiffResult.BUFFERED)
    assert not book.status().trusted and "expected U=102" in book.status().reason
    for read in (book.best_bid, book.best_ask, book.mid, lambda: book.top_levels(5)):
        with pytest.raises(BookNotSyncedError):
            read()

    # The fresh snapshot (id 104) is bridged by the buffered diff 105..106.
    book.apply_snapshot(snap(104, bids=[(99.0, 1.0)], asks=[(101.0, 9.0)]))

    assert book.state is BookState.SYNCED
    assert book.best_ask() == BookLevel(101.0, 8.0)
    assert book.last_update_id == 106


def test_spot_contiguous_diffs_apply_and_repeats_are_dropped() -> None:
    book = synced_spot_book()

    results = [
        book.apply_diff(diff(102, 103, bids=[(99.6, 1.0)])),
        book.apply_diff(diff(102, 103, bids=[(99.6, 5.0)])),  # a repeat (u <= last): harmless, dropped
        book.apply_diff(diff(104, 104, asks=[(100.5, 2.0)])),
    ]

    assert results == [DiffResult.APPLIED, DiffResult.DROPPED, DiffResult.APPLIED]
    assert book.best_bid() == BookLevel(99.6, 1.0)
    assert book.best_ask() == BookLevel(100.5, 2.0)


def test_spot_overlapping_diff_is_a_gap_not_a_partial_apply() -> None:
    book = synced_spot_book()  # at update id 101

    result = book.apply_diff(diff(101, 103))  # U must be 102; an overlap means the sequence is broken

    assert result is DiffResult.GAP


def test_diffs_received_before_the_snapshot_are_buffered_and_replayed() -> None:
    # Binance: open the stream, buffer, then fetch the snapshot, which is older than some buffered diffs.
    book = OrderBook("BTC/USDT", SyncRule.SPOT)
    received = [
        book.apply_diff(diff(90, 95, bids=[(99.0, 5.0)])),
        book.apply_diff(diff(96, 102, bids=[(99.0, 6.0)])),
        book.apply_diff(diff(103, 103, asks=[(101.0, 0.0)])),
    ]

    book.apply_snapshot(SNAP_100)

    assert received == [DiffResult.BUFFERED] * 3
    assert book.state is BookState.SYNCED
    assert book.best_bid() == BookLevel(99.0, 6.0)
    assert book.best_ask() == BookLevel(102.0, 3.0)
    assert book.last_update_id == 103 and book.buffered == 0


def test_snapshot_newer_than_every_buffered_diff_waits_for_the_next_one() -> None:
    book = OrderBook("BTC/USDT", SyncRule.SPOT)
    book.apply_diff(diff(90, 95))

    book.apply_snapshot(SNAP_100)

    assert book.state is BookState.AWAITING_FIRST_DIFF
    assert book.apply_diff(diff(101, 101)) is DiffResult.APPLIED


def test_snapshot_older_than_the_buffer_needs_another_and_keeps_the_buffer_for_it() -> None:
    book = OrderBook("BTC/USDT", SyncRule.SPOT)
    book.apply_diff(diff(105, 106, bids=[(99.0, 2.0)]))
    book.apply_diff(diff(107, 108, bids=[(99.0, 3.0)]))

    book.apply_snapshot(SNAP_100)  # ids 101..104 are in neither: cannot bridge

    assert book.state is BookState.NEEDS_RESYNC and book.buffered == 2
    book.apply_snapshot(snap(106, bids=[(99.0, 2.0)], asks=[(101.0, 1.0)]))
    assert book.state is BookState.SYNCED
    assert book.best_bid() == BookLevel(99.0, 3.0) and book.last_update_id == 108


def test_buffer_keeps_only_the_newest_diffs() -> None:
    book = OrderBook("BTC/USDT", SyncRule.SPOT, max_buffer=2)
    for i in range(5):
        book.apply_diff(diff(100 + i, 100 + i))

    assert book.buffered == 2


# ---- USD-M (futures) sync rules ----------------------------------------------------------------------
def test_futures_first_diff_must_cover_last_update_id() -> None:
    book = OrderBook("BTC/USDT:USDT", SyncRule.FUTURES)
    book.apply_snapshot(SNAP_100)

    old = book.apply_diff(diff(80, 99, pu=70))  # u < lastUpdateId: dropped
    bridging = book.apply_diff(diff(95, 100, pu=99, bids=[(99.0, 3.0)]))  # U <= 100 <= u (u == id is kept)

    assert (old, bridging) == (DiffResult.DROPPED, DiffResult.APPLIED)
    assert book.best_bid() == BookLevel(99.0, 3.0)


def test_futures_first_diff_starting_after_last_update_id_is_a_gap() -> None:
    book = OrderBook("BTC/USDT:USDT", SyncRule.FUTURES)
    book.apply_snapshot(SNAP_100)

    # Valid for spot (U == lastUpdateId + 1) but not for futures, whose first diff must contain the id.
    assert book.apply_diff(diff(101, 120, pu=100)) is DiffResult.GAP


def test_futures_chains_by_pu_not_by_contiguous_ids() -> None:
    book = OrderBook("BTC/USDT:USDT", SyncRule.FUTURES)
    book.apply_snapshot(SNAP_100)
    book.apply_diff(diff(90, 110, pu=85))

    chained = book.apply_diff(diff(150, 160, pu=110, asks=[(100.5, 1.0)]))  # U jumps, pu == previous u
    broken = book.apply_diff(diff(170, 180, pu=165))  # pu != 160: a diff was missed

    assert (chained, broken) == (DiffResult.APPLIED, DiffResult.GAP)
    assert book.state is BookState.NEEDS_RESYNC
    assert "expected pu=160" in book.status().reason


# ---- levels ------------------------------------------------------------------------------------------
def test_zero_quantity_removes_a_level_and_unknown_removals_are_ignored() -> None:
    book = synced_spot_book()

    book.apply_diff(diff(102, 102, bids=[(99.5, 0.0), (50.0, 0.0)], asks=[(101.0, 0.0)]))

    assert book.best_bid() == BookLevel(99.0, 1.0)
    assert book.best_ask() == BookLevel(102.0, 3.0)
    assert book.top_levels(10) == ([BookLevel(99.0, 1.0), BookLevel(98.0, 2.0)], [BookLevel(102.0, 3.0)])


def test_top_levels_are_best_first_and_bounded() -> None:
    book = synced_spot_book()

    bids, asks = book.top_levels(2)

    assert bids == [BookLevel(99.5, 0.5), BookLevel(99.0, 1.0)]
    assert asks == [BookLevel(101.0, 1.5), BookLevel(102.0, 3.0)]
    assert book.top_levels(0) == ([], [])
    assert len(book.top_levels(100)[0]) == 3


def test_mid_is_none_when_a_side_is_empty() -> None:
    book = synced_spot_book()
    assert book.mid() == pytest.approx((99.5 + 101.0) / 2)

    book.apply_diff(diff(102, 102, asks=[(101.0, 0.0), (102.0, 0.0)]))

    assert book.best_ask() is None and book.mid() is None
    assert book.status().reason == "one side of the book is empty"


# ---- trust -------------------------------------------------------------------------------------------
def test_crossed_book_is_flagged_and_not_trusted() -> None:
    book = synced_spot_book()
    assert not book.is_crossed() and book.status().trusted

    book.apply_diff(diff(102, 102, bids=[(101.0, 1.0)]))  # bid == best ask: locked, impossible on one venue

    assert book.is_crossed()
    status = book.status()
    assert not status.trusted and status.reason.startswith("crossed")


def test_stale_book_is_flagged_with_default_and_explicit_max_age() -> None:
    book = OrderBook("BTC/USDT", SyncRule.SPOT, max_age_us=2_000_000)
    book.apply_snapshot(SNAP_100)
    book.apply_diff(diff(101, 101, ts_us=T0 + 500_000))

    assert not book.is_stale(T0 + 2_500_000)  # exactly max_age old: still fresh
    assert book.is_stale(T0 + 2_500_001)
    assert not book.is_stale(T0 + 2_500_001, max_age_us=10_000_000)
    status = book.status(now_us=T0 + 4_500_000)
    assert not status.trusted and status.reason == "stale: last update age 4.000 s"
    assert book.status(now_us=T0 + 600_000).trusted


def test_book_without_any_exchange_time_is_stale() -> None:
    book = OrderBook("BTC/USDT", SyncRule.SPOT)

    book.apply_snapshot(snap(None, bids=[(1.0, 1.0)], asks=[(2.0, 1.0)], ts_us=None))

    assert book.is_synced and book.is_stale(T0)


# ---- whole-book venues (Upbit) and invalidation -------------------------------------------------------
def test_snapshot_without_update_id_is_synced_and_a_diff_after_it_is_a_gap() -> None:
    book = OrderBook("BTC/KRW")
    book.apply_snapshot(snap(None, bids=[(100.0, 1.0)], asks=[(101.0, 2.0)]))
    assert book.best_ask() == BookLevel(101.0, 2.0)

    result = book.apply_diff(diff(1, 2))

    assert result is DiffResult.GAP and book.state is BookState.NEEDS_RESYNC


def test_invalidate_forces_a_resync() -> None:
    book = synced_spot_book()

    book.invalidate("websocket reconnected")

    assert book.status().reason == "websocket reconnected"
    with pytest.raises(BookNotSyncedError, match="websocket reconnected"):
        book.best_bid()


def test_constructor_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError):
        OrderBook("BTC/USDT", max_age_us=0)


# ---- model check and speed ---------------------------------------------------------------------------
level_updates = st.lists(
    st.tuples(st.booleans(), st.integers(0, 40), st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.25])),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(level_updates, min_size=1, max_size=8))
def test_book_matches_a_plain_dict_model(batches: list[list[tuple[bool, int, float]]]) -> None:
    # Arrange: bids at ticks 0..40 below 1000, asks above; the model is two plain dicts.
    book = OrderBook("BTC/USDT", SyncRule.SPOT)
    book.apply_snapshot(snap(10, bids=[(999.0, 1.0)], asks=[(1001.0, 1.0)]))
    model: dict[bool, dict[float, float]] = {True: {999.0: 1.0}, False: {1001.0: 1.0}}
    next_id = 11
    for batch in batches:
        bids = [(1000.0 - 1 - tick, qty) for is_bid, tick, qty in batch if is_bid]
        asks = [(1000.0 + 1 + tick, qty) for is_bid, tick, qty in batch if not is_bid]
        # Act
        assert book.apply_diff(diff(next_id, next_id + 1, bids=bids, asks=asks)) is DiffResult.APPLIED
        next_id += 2
        for side, levels in ((True, bids), (False, asks)):
            for price, qty in levels:
                if qty:
                    model[side][price] = qty
                else:
                    model[side].pop(price, None)
        # Assert
        want_bids = sorted(model[True].items(), reverse=True)[:5]
        want_asks = sorted(model[False].items())[:5]
        assert book.top_levels(5) == (want_bids, want_asks)


def test_apply_diff_costs_well_under_10_us_per_level() -> None:
    rng = random.Random(7)
    book = OrderBook("BTC/USDT", SyncRule.SPOT)
    book.apply_snapshot(
        snap(
            0,
            bids=[(50_000.0 - i, 1.0) for i in range(1000)],
            asks=[(50_001.0 + i, 1.0) for i in range(1000)],
        )
    )
    diffs = [
        diff(
            i,
            i,
            bids=[(50_000.0 - rng.randrange(1200), rng.choice((0.0, 0.3))) for _ in range(20)],
            asks=[(50_001.0 + rng.randrange(1200), rng.choice((0.0, 0.3))) for _ in range(20)],
        )
        for i in range(1, 2501)
    ]
    levels = sum(len(d.bids) + len(d.asks) for d in diffs)

    start = time.perf_counter()
    for d in diffs:
        book.apply_diff(d)
    per_level_us = (time.perf_counter() - start) / levels * 1e6

    assert book.is_synced
    assert per_level_us < 10.0, f"{per_level_us:.2f} µs per level"
