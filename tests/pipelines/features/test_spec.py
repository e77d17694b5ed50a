"""The shared feature definition: names, parameter validation, helpers both implementations use."""

from __future__ import annotations

import math

import pytest

from pipelines.features import FEATURE_COLUMNS
from pipelines.features.spec import (
    CORE_FEATURES,
    FEATURES,
    SESSION_ASIA,
    SESSION_EUROPE,
    SESSION_US,
    FeatureParams,
    timeframe_us,
    window_market_applies,
)


def test_feature_columns_are_the_core_20_then_the_extras() -> None:
    # Arrange
    core = (
        "rsi_14", "roc_1", "roc_5", "bb_width", "atr_pct", "adx_14", "mfi_14", "obv_slope",
        "spread_pct", "bid_ask_imbalance", "lob_depth_imbalance", "microprice_dev", "cumdelta_5m",
        "cancel_rate_1m", "vw_momentum_1m", "ofi_l1",
        "vol_regime", "trend_regime", "volume_regime", "time_regime",
    )  # fmt: skip
    extras = {
        "vpin", "kyle_lambda", "hurst", "ofi_l5", "ofi_l10", "aggressor_ratio_30s", "aggressor_ratio_60s",
        "aggressor_ratio_120s", "liquidation_imbalance", "price_vs_open", "time_decay",
    }  # fmt: skip

    # Act
    names = FEATURE_COLUMNS

    # Assert
    assert core == CORE_FEATURES
    assert names[:20] == core
    assert set(names[20:]) == extras
    assert len(set(names)) == len(names) == 31
    assert {f.name for f in FEATURES} == set(names)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rsi_period": 0}, "rsi_period"),
        ({"regime_slow": 20}, "regime_slow"),
        ({"hurst_window": 64}, "hurst_window"),
        ({"hurst_lags": (4, 2)}, "hurst_lags"),
        ({"aggressor_windows_s": (30, 60)}, "aggressor_windows_s"),
        ({"book_levels": 5}, "book_levels"),
        ({"vpin_bucket_quote": 0.0}, "VPIN"),
        ({"sessions": ((1, SESSION_ASIA),)}, "sessions"),
        ({"book_stale_s": math.inf}, "book_stale_s"),
    ],
)
def test_bad_parameters_fail_at_construction(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FeatureParams(**change)  # type: ignore[arg-type]


def test_session_codes_follow_the_utc_hour() -> None:
    p = FeatureParams()
    assert [p.session_code(h) for h in (0, 7, 8, 12, 13, 21, 22, 23)] == [
        SESSION_ASIA, SESSION_ASIA, SESSION_EUROPE, SESSION_EUROPE, SESSION_US, SESSION_US, SESSION_ASIA,
        SESSION_ASIA,
    ]  # fmt: skip


def test_regression_weights_give_the_least_squares_slope() -> None:
    # Arrange: OBV rising by exactly 3 per bar has slope 3; log-stds growing as 0.5 ln L give H = 0.5.
    p = FeatureParams()
    increments = [3.0] * (p.obv_slope_window - 1)
    log_stds = [0.5 * math.log(lag) + 7.0 for lag in p.hurst_lags]

    # Act
    slope = sum(w * s for w, s in zip(p.obv_slope_weights(), increments, strict=True))
    hurst = sum(w * y for w, y in zip(p.hurst_weights(), log_stds, strict=True))

    # Assert
    assert slope == pytest.approx(3.0, rel=1e-12)
    assert hurst == pytest.approx(0.5, rel=1e-12)


def test_timeframes_parse_to_microseconds() -> None:
    assert timeframe_us("5m") == 300_000_000
    assert timeframe_us("5s") == 5_000_000
    assert timeframe_us("1h") == 3_600_000_000
    with pytest.raises(ValueError, match="unknown timeframe"):
        timeframe_us("5x")
    assert window_market_applies(timeframe_us("1m"))
    assert not window_market_applies(timeframe_us("7m"))
    assert not window_market_applies(timeframe_us("1h"))


def test_vpin_bucket_size_can_be_set_per_symbol() -> None:
    p = FeatureParams(vpin_bucket_quote=1e5, vpin_bucket_quote_by_symbol=(("BTC/USDT", 2e6),))
    assert p.vpin_bucket_for("BTC/USDT") == 2e6
    assert p.vpin_bucket_for("ETH/USDT") == 1e5
