"""Candle features through `build_features`: the contract the nightly chain, training and Feast rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.domain.candles import empty_candles, normalize_candles
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.features.spec import SESSION_ASIA, SESSION_EUROPE, SESSION_US
from tests.pipelines.features._support import T0_US, finite_or_null, random_candles, us_times


def test_output_has_one_row_per_bar_keys_and_float_features() -> None:
    # Arrange: two symbols, given out of order.
    candles = random_candles(1, 150, ("AAA/USDT", "BBB/USDT")).sample(fraction=1.0, shuffle=True, seed=3)

    # Act
    out = build_features(candles)

    # Assert
    assert out.columns == ["symbol", "ts", "event_ts", *FEATURE_COLUMNS]
    assert out.height == candles.height
    assert out.schema["ts"] == out.schema["event_ts"] == pl.Datetime("us", "UTC")
    assert all(out.schema[c] == pl.Float64 for c in FEATURE_COLUMNS)
    assert out.select(pl.col("event_ts") - pl.col("ts")).to_series().unique().to_list() == [timedelta(minutes=5)]
    assert out.equals(out.sort("symbol", "ts"))


def test_empty_input_gives_an_empty_frame_with_the_schema() -> None:
    out = build_features(empty_candles())
    assert out.height == 0
    assert out.columns == ["symbol", "ts", "event_ts", *FEATURE_COLUMNS]


def test_missing_input_columns_are_reported() -> None:
    with pytest.raises(ValueError, match="volume"):
        build_features(random_candles(1, 10).drop("volume"))


def test_warm_up_rows_are_null_not_zero() -> None:
    # Arrange
    candles = random_candles(2, 200)

    # Act
    out = build_features(candles)

    # Assert: the first valid row of each feature is where its window is first full (TA-Lib lookbacks).
    first_valid = {c: out[c].is_not_null().arg_max() for c in ("rsi_14", "roc_5", "bb_width", "atr_pct",
                                                              "adx_14", "mfi_14", "obv_slope", "vol_regime",
                                                              "trend_regime", "hurst")}  # fmt: skip
    assert first_valid == {
        "rsi_14": 14, "roc_5": 5, "bb_width": 19, "atr_pct": 14, "adx_14": 27, "mfi_14": 14,
        "obv_slope": 19, "vol_regime": 60, "trend_regime": 59, "hurst": 127,
    }  # fmt: skip
    # Without trades, book or liquidations every flow column is null.
    for name in ("spread_pct", "cumdelta_5m", "vpin", "kyle_lambda", "ofi_l10", "liquidation_imbalance"):
        assert out[name].null_count() == out.height


def test_flat_prices_give_null_ratios_and_a_neutral_trend() -> None:
    # Arrange: 80 identical bars with zero volume (an illiquid coin that did not trade).
    n = 80
    candles = normalize_candles(
        pl.DataFrame(
            {
                "symbol": ["FLAT/USDT"] * n,
                "ts": us_times([T0_US + k * 300_000_000 for k in range(n)]),
                "open": [2.0] * n,
                "high": [2.0] * n,
                "low": [2.0] * n,
                "close": [2.0] * n,
                "volume": [0.0] * n,
            }
        )
    )

    # Act
    last = build_features(candles).row(-1, named=True)

    # Assert: undefined ratios are null (not 0, not NaN); defined ones keep their value.
    assert last["rsi_14"] is None
    assert last["mfi_14"] is None
    assert last["obv_slope"] is None
    assert last["volume_regime"] is None
    assert last["vol_regime"] is None  # ATR 0 / ATR 0
    assert last["hurst"] is None
    assert last["adx_14"] == 0.0  # TA-Lib: undefined DX counts as 0 in the first average
    assert last["trend_regime"] == 0.0
    assert last["roc_1"] == 0.0
    assert last["bb_width"] == 0.0
    assert last["atr_pct"] == 0.0


def test_time_regime_encodes_the_session_of_the_bar_open() -> None:
    # Arrange: one bar per hour of a day.
    start = datetime(2024, 6, 1, tzinfo=UTC)
    candles = normalize_candles(
        pl.DataFrame(
            {
                "symbol": ["AAA/USDT"] * 24,
                "ts": [start + timedelta(hours=h) for h in range(24)],
                "open": [1.0] * 24,
                "high": [1.0] * 24,
                "low": [1.0] * 24,
                "close": [1.0] * 24,
                "volume": [1.0] * 24,
            }
        )
    )

    # Act
    codes = build_features(candles, "1h")["time_regime"].to_list()

    # Assert
    assert codes == [SESSION_ASIA] * 8 + [SESSION_EUROPE] * 5 + [SESSION_US] * 9 + [SESSION_ASIA] * 2


def test_window_market_features_on_one_minute_bars() -> None:
    # Arrange: 1m bars from 00:03 (mid-window) to 00:14; the 00:05 and 00:10 windows open at bars 2, 7.
    n = 12
    opens = [100.0 + k for k in range(n)]
    closes = [o + 0.5 for o in opens]
    candles = normalize_candles(
        pl.DataFrame(
            {
                "symbol": ["AAA/USDT"] * n,
                "ts": us_times([T0_US + (3 + k) * 60_000_000 for k in range(n)]),
                "open": opens,
                "high": [c + 1 for c in closes],
                "low": [o - 1 for o in opens],
                "close": closes,
                "volume": [1.0] * n,
            }
        )
    )

    # Act
    out = build_features(candles, "1m")

    # Assert: the first window's open was never seen; afterwards close / window open - 1.
    pvo = out["price_vs_open"].to_list()
    assert pvo[:2] == [None, None]
    assert pvo[2] == pytest.approx(closes[2] / opens[2] - 1.0)
    assert pvo[6] == pytest.approx(closes[6] / opens[2] - 1.0)
    assert pvo[7] == pytest.approx(closes[7] / opens[7] - 1.0)
    # Seconds left after the bar closes, over 300: bar 00:03 closes at 00:04 -> 60 s left.
    assert out["time_decay"].to_list()[:3] == pytest.approx([0.2, 0.0, 0.8])


def test_window_market_features_are_null_for_bars_longer_than_the_window() -> None:
    out = build_features(random_candles(4, 30, timeframe_s=3600), "1h")
    assert out["price_vs_open"].null_count() == out["time_decay"].null_count() == out.height


def test_hurst_separates_trending_from_mean_reverting_prices() -> None:
    # Arrange: a random walk (H ~ 0.5), its cumulative sum (persistent, H > 0.5) and white noise
    # around a level (anti-persistent, H ~ 0).
    rng = np.random.default_rng(7)
    n = 1500
    walk = np.cumsum(rng.normal(0, 0.002, n))
    series = {
        "WALK/USDT": np.exp(walk),
        "TREND/USDT": np.exp(np.cumsum(walk) * 0.05),
        "NOISE/USDT": np.exp(rng.normal(0, 0.002, n)),
    }
    frames = [
        pl.DataFrame(
            {
                "symbol": [s] * n,
                "ts": us_times([T0_US + k * 300_000_000 for k in range(n)]),
                "open": c,
                "high": c * 1.001,
                "low": c * 0.999,
                "close": c,
                "volume": np.ones(n),
            }
        )
        for s, c in series.items()
    ]
    candles = normalize_candles(pl.concat(frames))

    # Act
    mean_h = build_features(candles).group_by("symbol").agg(pl.col("hurst").mean())
    h = dict(zip(mean_h["symbol"], mean_h["hurst"], strict=True))

    # Assert
    assert 0.4 < h["WALK/USDT"] < 0.6
    assert h["TREND/USDT"] > 0.8
    assert h["NOISE/USDT"] < 0.15


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), bars=st.integers(1, 160), tiny=st.booleans())
def test_never_nan_or_inf(seed: int, bars: int, tiny: bool) -> None:
    # Arrange: random walks with flat bars and zero volumes, at ordinary or memecoin-sized prices.
    candles = random_candles(seed, bars, ("AAA/USDT", "BBB/USDT"))
    if tiny:
        candles = candles.with_columns(pl.col(c) * 1e-7 for c in ("open", "high", "low", "close"))

    # Act
    out = build_features(candles)

    # Assert
    assert finite_or_null(out, FEATURE_COLUMNS) == []
