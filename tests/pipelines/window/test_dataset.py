"""Window labels at the boundaries (ties Up, incomplete windows dropped) and the scoring rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.domain.candles import normalize_candles
from pipelines.features import build_features
from pipelines.window.dataset import (
    DIRECTIONAL_FEATURES,
    WINDOW_FEATURES,
    check_tiles,
    scoring_row,
    window_dataset,
    window_labels,
)

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


def test_scoring_row_is_the_datasets_row_from_the_features_of_the_bar_closing_at_t() -> None:
    # Arrange: 40 one-minute bars (eight windows) and their batch features.
    rng = np.random.default_rng(3)
    closes = list(100 * np.exp(np.cumsum(rng.normal(0, 0.001, 40))))
    candles = _candles([100.0, *closes[:-1]], closes)
    features = build_features(candles, "1m")
    rows = window_dataset(candles, "1m", features=features)

    # Act: the serving side's row at each scoring time, from the features of the bar that closed then.
    by_close = {r["event_ts"]: r for r in features.iter_rows(named=True)}
    served = [scoring_row(int(t.timestamp() * 1_000_000), by_close[t]) for t in rows["ts"]]

    # Assert: the same WINDOW_FEATURES, the window open's price_vs_open 0 and its time_decay 1.
    assert served == rows.select(WINDOW_FEATURES).to_dicts()
    opens = [s for s, t in zip(served, rows["ts"], strict=True) if t.minute % 5 == 0]
    assert opens and all(s["price_vs_open"] == 0.0 and s["time_decay"] == 1.0 for s in opens)


def test_a_scoring_row_without_the_windows_open_has_no_price_vs_open() -> None:
    t = int(datetime(2024, 3, 1, 0, 3, tzinfo=UTC).timestamp() * 1_000_000)  # 3 minutes into a window
    row = scoring_row(t, {"price_vs_open": None, "rsi_14": 55.0})
    assert row["price_vs_open"] is None and row["time_decay"] == pytest.approx(0.4) and row["rsi_14"] == 55.0
    assert scoring_row(t - 180_000_000, {"price_vs_open": 0.02})["price_vs_open"] == 0.0  # t = W


def test_bars_that_do_not_tile_the_window_are_refused() -> None:
    check_tiles("1m")
    check_tiles("5m")
    with pytest.raises(ValueError, match="do not tile"):
        check_tiles("1h")
