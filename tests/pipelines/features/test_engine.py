"""The incremental engine's API: bar closing, clocks, modes, book resync, misuse."""

from __future__ import annotations

import pytest

from pipelines.domain.marketdata import BookDiff, BookLevel, BookSnapshot, BookTicker, Trade
from pipelines.features import FEATURE_COLUMNS
from pipelines.features.incremental import FeatureEngine
from tests.pipelines.features._support import T0_US, synthetic_stream

S = 1_000_000
SYM = "AAA/USDT"


def _trade(sec: float, price: float, side: str = "buy", qty: float = 1.0) -> Trade:
    return Trade("binance", SYM, T0_US + round(sec * S), price, qty, side, "1")  # type: ignore[arg-type]


def test_a_bar_closes_when_an_event_reaches_its_end_and_empty_bars_are_flat() -> None:
    # Arrange: 10 s bars; the feed starts exactly at a bar boundary.
    engine = FeatureEngine("10s")
    engine.on_trade(_trade(0, 10.0))
    engine.on_trade(_trade(5, 12.0))

    # Act: a trade at 10 s closes bar [0, 10); advance_to(40 s) closes [10, 20), [20, 30), [30, 40).
    first = engine.on_trade(_trade(10, 11.0, "sell"))
    later = engine.advance_to(SYM, T0_US + 40 * S)

    # Assert
    assert [r.ts_us for r in first] == [T0_US]
    assert [r.event_ts_us for r in first] == [T0_US + 10 * S]
    assert [r.ts_us for r in later] == [T0_US + k * 10 * S for k in (1, 2, 3)]
    assert first[0].values["roc_1"] is None  # first bar: no previous close
    assert later[0].values["roc_1"] == pytest.approx(11.0 / 12.0 - 1.0)
    assert later[1].values["roc_1"] == 0.0  # an empty bar repeats the close
    assert set(later[2].values) == set(FEATURE_COLUMNS)
    assert later[2].values["aggressor_ratio_30s"] == pytest.approx(0.0)  # [10, 40): one sell of 11


def test_the_partial_first_bar_is_not_emitted() -> None:
    engine = FeatureEngine("10s")
    engine.on_trade(_trade(3, 10.0))  # feed starts mid-bar
    rows = engine.on_trade(_trade(25, 10.0))
    assert [r.ts_us for r in rows] == [T0_US + 10 * S]


def test_a_late_event_counts_at_the_symbols_clock() -> None:
    # Arrange: a trade stamped 9 s arrives after a trade at 12 s (streams interleave out of order).
    engine = FeatureEngine("10s")
    engine.on_trade(_trade(0, 10.0))
    engine.on_trade(_trade(12, 10.0))

    # Act
    engine.on_trade(_trade(9, 10.0, "sell", 5.0))
    rows = engine.advance_to(SYM, T0_US + 20 * S)

    # Assert: it fell in bar [10, 20), not in the already closed [0, 10).
    assert engine.clock(SYM) == T0_US + 20 * S
    assert rows[0].ts_us == T0_US + 10 * S
    live = engine.features_at(SYM, T0_US + 31 * S)
    assert live["aggressor_ratio_30s"] == pytest.approx(10.0 / 60.0)  # [1, 31): buy 10 @12, sell 50 @12


def test_book_features_recover_after_a_gap_and_a_new_snapshot() -> None:
    # Arrange
    def snap(last_id: int) -> BookSnapshot:
        return BookSnapshot("binance", SYM, None, last_id, (BookLevel(10.0, 1.0),), (BookLevel(11.0, 3.0),))

    def diff(sec: float, first: int, last: int) -> BookDiff:
        return BookDiff("binance", SYM, T0_US + round(sec * S), first, last, None, (BookLevel(10.0, 2.0),), ())

    engine = FeatureEngine("1m")
    engine.on_book_snapshot(snap(10))
    engine.on_book_diff(diff(0, 11, 11))
    ok = engine.features_at(SYM, T0_US + 1 * S)["bid_ask_imbalance"]

    # Act
    engine.on_book_diff(diff(2, 20, 21))  # gap 11 -> 20
    broken = engine.features_at(SYM, T0_US + 3 * S)["bid_ask_imbalance"]
    engine.on_book_snapshot(snap(30))
    engine.on_book_diff(diff(4, 31, 31))
    healed = engine.features_at(SYM, T0_US + 5 * S)["bid_ask_imbalance"]

    # Assert
    assert ok == pytest.approx((2.0 - 3.0) / 5.0)
    assert broken is None
    assert healed == pytest.approx((2.0 - 3.0) / 5.0)


def test_book_tickers_are_ignored() -> None:
    engine = FeatureEngine("1m")
    ticker = BookTicker("binance", SYM, None, 1, 10.0, 1.0, 11.0, 1.0)
    assert engine.on_event(ticker) == []
    assert engine.clock(SYM) is None


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match='bars="candles"'):
        FeatureEngine("5m").on_candle(SYM, T0_US, 1.0, 1.0, 1.0, 1.0, 1.0)
    candles = FeatureEngine("1m", bars="candles")
    candles.on_trade(_trade(70, 10.0))
    with pytest.raises(ValueError, match="arrived after an event"):
        candles.on_candle(SYM, T0_US, 1.0, 1.0, 1.0, 1.0, 1.0)  # closes at 60 s, after the 70 s trade
    with pytest.raises(TypeError, match="unsupported event"):
        FeatureEngine("5m").on_event("not an event")  # type: ignore[arg-type]


def test_candle_mode_evaluates_flow_at_the_candle_close() -> None:
    # Arrange: trades during the bar [0, 60), then the candle of that bar.
    engine = FeatureEngine("1m", bars="candles")
    engine.on_trade(_trade(0, 10.0, "buy", 3.0))
    engine.on_trade(_trade(40, 10.0, "sell", 1.0))

    # Act
    row = engine.on_candle(SYM, T0_US, 10.0, 10.0, 10.0, 10.0, 4.0)

    # Assert
    assert row.event_ts_us == T0_US + 60 * S
    assert row.values["aggressor_ratio_30s"] == pytest.approx(0.0)  # [30, 60): the sell only
    assert row.values["aggressor_ratio_60s"] == pytest.approx(0.75)
    assert row.values["rsi_14"] is None  # warm-up


def test_intra_bar_queries_do_not_disturb_bar_values() -> None:
    # Arrange: a long stream (the window checkpoints get compacted), queried ahead of time between
    # events by one engine and not at all by the other.
    events = synthetic_stream(11, 25_000, liquidations=True)
    quiet, queried = FeatureEngine("10s"), FeatureEngine("10s")

    # Act
    quiet_rows = quiet.on_events(events)
    queried_rows = []
    for k, ev in enumerate(events):
        queried_rows.extend(queried.on_event(ev))
        clock = queried.clock("SYN/USDT")
        if k % 50 == 0 and clock is not None:
            live = queried.features_at("SYN/USDT", clock + 7 * S)  # ahead of the next bar close
            assert set(live) == set(FEATURE_COLUMNS)

    # Assert
    assert len(quiet_rows) > 100
    assert queried_rows == quiet_rows
    assert queried.features_at("NOPE/USDT", T0_US) == dict.fromkeys(FEATURE_COLUMNS)
