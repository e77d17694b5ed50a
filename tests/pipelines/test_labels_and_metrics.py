from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.labels import barrier_bars, barrier_label, direction_label, tie_share, window_direction_label
from pipelines.metrics import classification_metrics, expected_calibration_error, strategy_sharpe


def _closes(closes: dict[str, list[float]]) -> pl.DataFrame:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(s, t0 + timedelta(minutes=5 * i), c) for s, cs in closes.items() for i, c in enumerate(cs)]
    return pl.DataFrame(rows, schema=["symbol", "ts", "close"], orient="row")


def test_direction_label_looks_h_bars_ahead_per_symbol_and_leaves_ties_out() -> None:
    candles = _closes({"A/USDT": [1, 2, 2, 1], "B/USDT": [5, 4, 6, 6]})
    one = direction_label(candles, 1)
    # A: 1->2 up, 2->2 a tie (no label), 2->1 down; B: down, up, a tie.
    assert one.filter(pl.col("symbol") == "A/USDT")["direction_1"].to_list() == [1, None, 0, None]
    assert one.filter(pl.col("symbol") == "B/USDT")["direction_1"].to_list() == [0, 1, None, None]
    assert one.filter(pl.col("symbol") == "A/USDT")["is_tie"].to_list() == [False, True, False, None]
    assert tie_share(one) == pytest.approx(2 / 6)
    two = direction_label(candles, 2)
    assert two.filter(pl.col("symbol") == "A/USDT")["direction_2"].to_list() == [1, 0, None, None]


def test_cost_aware_label_is_up_only_when_the_move_pays_the_round_trip() -> None:
    # returns: +0.1%, +0.5%, 0, -1%
    candles = _closes({"A/USDT": [100.0, 100.1, 100.6005, 100.6005, 99.594495]})
    label = direction_label(candles, 1, mode="cost_aware", round_trip_cost=0.003)
    assert label["direction_1"].to_list() == [0, 1, 0, 0, None]
    assert label["is_tie"].to_list() == [False, False, True, False, None]
    with pytest.raises(ValueError, match="mode"):
        direction_label(candles, 1, mode="sometimes")  # type: ignore[arg-type]


def test_window_markets_keep_the_venue_rule_a_tie_resolves_up() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    windows = pl.DataFrame(
        {
            "symbol": ["BTC/USD"] * 4,
            "ts": [t0 + timedelta(minutes=5 * i) for i in range(4)],
            "open": [100.0, 100.0, 100.0, None],
            "close": [101.0, 100.0, 99.0, 100.0],
        }
    )
    assert window_direction_label(windows)["window_up"].to_list() == [1, 1, 0, None]


def test_perfect_and_useless_forecasts() -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    perfect = classification_metrics(y, y.astype(float))
    assert perfect.auc == 1.0 and perfect.accuracy == 1.0 and perfect.brier == pytest.approx(0, abs=1e-12)
    coin = classification_metrics(y, np.full(6, 0.5))
    assert coin.brier == pytest.approx(0.25) and coin.auc == 0.5


def test_ece_is_zero_when_calibrated_and_large_when_overconfident() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(200_000) < p).astype(float)
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.where(p > 0.5, 0.99, 0.01)) > 0.2


def test_sharpe_pays_fees_on_every_position_change() -> None:
    p = np.array([0.9, 0.1, 0.9, 0.1])
    returns = np.array([0.001, -0.001, 0.001, -0.001])
    free = strategy_sharpe(p, returns + 1e-9 * np.arange(4), threshold=0.02, fee=0.0, bars_per_year=1)
    costly = strategy_sharpe(p, returns + 1e-9 * np.arange(4), threshold=0.02, fee=0.01, bars_per_year=1)
    assert free > 0 > costly


def _bars(rows: list[tuple[float, float, float]]) -> pl.DataFrame:
    """(high, low, close) per 5m bar of one symbol."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        [("A/USDT", t0 + timedelta(minutes=5 * i), h, lo, c) for i, (h, lo, c) in enumerate(rows)],
        schema=["symbol", "ts", "high", "low", "close"],
        orient="row",
    )


def test_eight_minutes_on_five_minute_bars_is_two_bars() -> None:
    assert barrier_bars(8, 5) == 2
    assert barrier_bars(5, 5) == 1
    assert barrier_bars(8, 1) == 8


def test_barrier_hits_target_before_stop_within_the_window() -> None:
    candles = _bars(
        [
            (100.0, 100.0, 100.0),  # t0: reference 100
            (100.2, 99.9, 100.1),  # t1: neither barrier
            (100.6, 99.95, 100.3),  # t2: touches +0.4% of t0 and of t1 -> 1 for both
            (100.3, 100.2, 100.2),  # t3: beyond t0's window
            (100.2, 99.0, 99.1),  # t4: -1.2% from t2/t3's closes: stop
            (99.2, 99.0, 99.1),
        ]
    )
    labels = barrier_label(candles, target=0.004, stop=0.008, horizon_minutes=8, timeframe_minutes=5)
    assert labels["barrier_2"].to_list() == [1, 1, 0, 0, None, None]


def test_a_bar_touching_both_barriers_counts_as_the_stop() -> None:
    candles = _bars([(100.0, 100.0, 100.0), (101.0, 99.0, 100.0), (100.0, 100.0, 100.0), (100, 100, 100)])
    labels = barrier_label(candles, target=0.004, stop=0.008, horizon_minutes=8, timeframe_minutes=5)
    assert labels["barrier_2"][0] == 0
