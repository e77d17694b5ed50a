"""Window labels at the boundaries (ties Up, incomplete windows dropped) and the scoring rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.domain.candles import normalize_candles
from pipelines.window.dataset import DIRECTIONAL_FEATURES, window_dataset, window_labels

START = datetime(2024, 3, 1, tzinfo=UTC)


def _candles(opens: list[float], closes: list[float], minutes: int = 1, start: datetime = START) -> pl.DataFrame:
    n = len(opens)
    ts = [start + timedelta(minutes=minutes * i) for i in range(n)]
    frame = pl.DataFrame(
        {
            "symbol": ["BTC/USDT"] * n,
            "ts": ts,
            "open": opens,
            "high": [max(o, c) + 1 for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) - 1 for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": [1.0] * n,
        }
    )
    return normalize_candles(frame)


def test_label_is_close_of_last_bar_vs_open_of_first_and_a_tie_is_up() -> None:
    # window 1: open 100, close 100 (tie -> up); window 2: open 100, close 99 (down); window 3: up
    opens = [100, 101, 102, 101, 100, 100, 100, 100, 100, 100, 50, 51, 52, 53, 54]
    closes = [101, 102, 101, 100, 100, 100, 100, 100, 100, 99, 51, 52, 53, 54, 55]
    labels = window_labels(_candles(opens, closes), "1m")
    assert labels["up"].to_list() == [1, 0, 1]
    assert labels["window_open"].to_list() == [100, 100, 50]
    assert labels["window_close"].to_list() == [100, 99, 55]
    assert labels["window_start"].to_list() == [START + timedelta(minutes=5 * i) for i in range(3)]


def test_a_window_with_a_missing_bar_is_dropped_not_guessed() -> None:
    candles = _candles([100.0] * 15, [101.0] * 15)
    holed = candles.filter(pl.col("ts") != START + timedelta(minutes=7))  # a bar of window 2 is missing
    assert window_labels(holed, "1m")["window_start"].to_list() == [START, START + timedelta(minutes=10)]
    # a window that starts mid-way (first bar missing) is dropped too
    assert window_labels(candles.slice(1), "1m")["window_start"].to_list() == [
        START + timedelta(minutes=5),
        START + timedelta(minutes=10),
    ]


def test_five_minute_bars_are_one_window_each() -> None:
    labels = window_labels(_candles([10.0, 10.0, 10.0], [10.0, 9.0, 11.0], minutes=5), "5m")
    assert labels["up"].to_list() == [1, 0, 1]
    with pytest.raises(ValueError, match="tile"):
        window_labels(_candles([1.0], [1.0], minutes=60), "1h")


def test_scoring_rows_carry_the_window_extras_at_each_minute() -> None:
    rng = np.random.default_rng(3)
    closes = list(100 + np.cumsum(rng.normal(0, 0.3, 300)))
    opens = [100.0, *closes[:-1]]
    ds = window_dataset(_candles(opens, closes), "1m")
    window = START + timedelta(minutes=150)
    rows = ds.filter(pl.col("window_start") == window).sort("ts")
    assert rows["ts"].to_list() == [window + timedelta(minutes=k) for k in range(5)]
    assert rows["time_decay"].to_list() == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    window_open = opens[150]
    assert rows["price_vs_open"].to_list() == pytest.approx(
        [0.0, *[closes[150 + k] / window_open - 1 for k in range(4)]]
    )
    assert set(DIRECTIONAL_FEATURES) <= set(ds.columns) and "up" in ds.columns
    # every row's features end at its scoring time: the label's window has not closed yet
    assert (ds["ts"] < ds["window_start"] + timedelta(minutes=5)).all()


def test_market_prices_join_only_within_the_window() -> None:
    closes = [100.0 + i * 0.01 for i in range(200)]
    opens = [100.0, *closes[:-1]]
    prices = pl.DataFrame(
        {"symbol": ["BTC/USDT"], "ts": [START + timedelta(minutes=150, seconds=30)], "price_up": [0.61]}
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    ds = window_dataset(_candles(opens, closes), "1m", market_prices=prices)
    got = ds.filter(pl.col("market_price").is_not_null()).sort("ts")
    assert got["ts"].to_list() == [START + timedelta(minutes=m) for m in (151, 152, 153, 154)]
