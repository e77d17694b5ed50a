"""Bars from trades: time bars and VPIN volume buckets, batch against hand-computed values and the
incremental builders against the batch ones."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.features.bars import TimeBarBuilder, VolumeBucketer, normalize_trades, time_bars, volume_buckets
from tests.pipelines.features._support import T0_US

S = 1_000_000  # µs per second


def _trades(rows: list[tuple[int, float, float, bool]], symbol: str = "AAA/USDT") -> pl.DataFrame:
    return normalize_trades(
        pl.DataFrame(
            {
                "symbol": [symbol] * len(rows),
                "ts": [T0_US + r[0] for r in rows],
                "price": [r[1] for r in rows],
                "qty": [r[2] for r in rows],
                "is_buy": [r[3] for r in rows],
            }
        )
    )


def test_time_bars_drop_the_partial_first_and_open_last_bar_and_fill_gaps() -> None:
    # Arrange: 10 s bars; the feed starts at 3 s (bar 0 partial), trades in bars 1 and 3, bar 2 empty,
    # and the last trade at 45 s leaves bar 4 incomplete.
    trades = _trades(
        [
            (3 * S, 10.0, 1.0, True),
            (11 * S, 11.0, 2.0, True),
            (12 * S, 9.0, 1.0, False),
            (15 * S, 10.5, 1.0, True),
            (31 * S, 12.0, 0.5, False),
            (45 * S, 13.0, 1.0, True),
        ]
    )

    # Act
    bars = time_bars(trades, "10s")

    # Assert
    assert bars["ts"].dt.epoch("us").to_list() == [T0_US + 10 * S, T0_US + 20 * S, T0_US + 30 * S]
    assert bars.row(0, named=True) | {"ts": None} == {
        "symbol": "AAA/USDT", "ts": None, "open": 11.0, "high": 11.0, "low": 9.0, "close": 10.5,
        "volume": 4.0, "buy_quote": 22.0 + 10.5, "sell_quote": 9.0, "trades": 3.0,
    }  # fmt: skip
    # The empty bar repeats the last close with zero volume.
    assert bars.row(1)[2:] == (10.5, 10.5, 10.5, 10.5, 0.0, 0.0, 0.0, 0.0)
    assert bars.row(2)[2:7] == (12.0, 12.0, 12.0, 12.0, 0.5)


def test_coverage_decides_the_first_and_last_bar() -> None:
    trades = _trades([(3 * S, 10.0, 1.0, True), (14 * S, 11.0, 1.0, True)])
    coverage = pl.DataFrame(
        {"symbol": ["AAA/USDT"], "start": [T0_US], "end": [T0_US + 40 * S]},
    ).with_columns(pl.from_epoch(c, time_unit="us").dt.replace_time_zone("UTC") for c in ("start", "end"))

    bars = time_bars(trades, "10s", coverage=coverage)

    # Feed running from 0 s: bar 0 is complete; the end at 40 s completes bars 1-3.
    assert bars["ts"].dt.epoch("us").to_list() == [T0_US + k * 10 * S for k in range(4)]
    assert bars["close"].to_list() == [10.0, 11.0, 11.0, 11.0]


trade_lists = st.lists(
    st.tuples(
        st.integers(0, 20 * S),  # gap to the previous trade
        st.floats(1.0, 2.0),
        st.floats(0.001, 5.0),
        st.booleans(),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(trade_lists, st.integers(0, 30 * S))
def test_incremental_time_bars_equal_the_batch_ones(rows: list[tuple[int, float, float, bool]], tail: int) -> None:
    # Arrange
    t = 0
    timed = []
    for gap, price, qty, buy in rows:
        t += gap
        timed.append((t, price, qty, buy))
    end_us = T0_US + t + tail
    builder = TimeBarBuilder(5 * S)

    # Act
    built = []
    for ts, price, qty, buy in timed:
        built.extend(builder.advance(T0_US + ts))
        builder.add_trade(T0_US + ts, price, qty, buy)
    built.extend(builder.advance(end_us))
    coverage = pl.DataFrame({"symbol": ["AAA/USDT"], "start": [T0_US + timed[0][0]], "end": [end_us]}).with_columns(
        pl.from_epoch(c, time_unit="us").dt.replace_time_zone("UTC") for c in ("start", "end")
    )
    batch = time_bars(_trades(timed), "5s", coverage=coverage)

    # Assert
    got = [(b.ts_us, b.open, b.high, b.low, b.close, b.trades) for b in built]
    want = [
        (r["ts"], r["open"], r["high"], r["low"], r["close"], int(r["trades"]))
        for r in batch.with_columns(pl.col("ts").dt.epoch("us")).iter_rows(named=True)
    ]
    assert got == want
    assert [b.volume for b in built] == pytest.approx(batch["volume"].to_list(), rel=1e-12)
    assert [b.buy_quote for b in built] == pytest.approx(batch["buy_quote"].to_list(), rel=1e-12)


def test_volume_buckets_split_trades_across_boundaries() -> None:
    # Arrange: buckets of 100 quote. Buy 150 -> bucket 0 is all buy (imbalance 1); sell 100 fills the
    # rest of bucket 1 (50 buy + 50 sell -> 0); buy 30 stays in the open bucket 2.
    trades = _trades([(0, 10.0, 15.0, True), (S, 10.0, 10.0, False), (2 * S, 10.0, 3.0, True)])

    # Act
    buckets = volume_buckets(trades, 100.0)

    # Assert
    assert buckets["bucket"].to_list() == [0, 1]
    assert buckets["imbalance"].to_list() == pytest.approx([1.0, 0.0])
    assert buckets["ts"].dt.epoch("us").to_list() == [T0_US, T0_US + S]


@settings(max_examples=60, deadline=None)
@given(trade_lists, st.floats(0.5, 20.0))
def test_incremental_volume_buckets_equal_the_batch_ones(
    rows: list[tuple[int, float, float, bool]], size: float
) -> None:
    # Arrange
    t = 0
    timed = []
    for gap, price, qty, buy in rows:
        t += gap
        timed.append((t, price, qty, buy))
    bucketer = VolumeBucketer(size)

    # Act
    incremental = [imb for _, p, q, b in timed for imb in bucketer.add(p, q, b)]
    batch = volume_buckets(_trades(timed), size)["imbalance"].to_list()

    # Assert: the same arithmetic on both sides (polars may divide by multiplying with the reciprocal,
    # so the last bit can differ).
    assert incremental == pytest.approx(batch, rel=1e-14, abs=1e-15)
    assert all(0.0 <= x <= 1.0 + 1e-12 for x in incremental)
