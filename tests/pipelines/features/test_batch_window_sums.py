"""The two window-sum kernels of `pipelines.features.batch`: dot-product sums (validated candles) and
running sums (candles with nulls, which the weighted kernel rejects) give the same features."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.features import build_features
from pipelines.features.batch import _candle_plan, _candle_stages
from pipelines.features.spec import CANDLE_FEATURES, DEFAULT_PARAMS, timeframe_us
from tests.pipelines.features._support import random_candles


@pytest.mark.parametrize(("seed", "bars"), [(1, 1), (2, 14), (3, 28), (4, 61), (5, 400)])
def test_dot_and_running_window_sums_agree(seed: int, bars: int) -> None:
    # Arrange: flat stretches and zero volumes included (exact-zero windows).
    candles = random_candles(seed, bars).drop("symbol")

    # Act
    dot, running = (
        _candle_stages(candles.lazy(), _candle_plan(timeframe_us("5m"), DEFAULT_PARAMS, dot_sums=flag)).collect()
        for flag in (True, False)
    )

    # Assert: same nulls, values equal to rounding.
    for name in CANDLE_FEATURES:
        assert dot[name].is_null().equals(running[name].is_null()), name
        rel = ((dot[name] - running[name]).abs() / running[name].abs().clip(1e-300)).max()
        assert rel is None or rel <= 1e-12, (name, rel)  # type: ignore[operator]


def test_a_null_close_nulls_its_windows_instead_of_failing() -> None:
    # Arrange: one missing close in an otherwise valid series.
    candles = random_candles(9, 120).with_columns(
        pl.when(pl.int_range(pl.len()) == 70).then(None).otherwise(pl.col("close")).alias("close")
    )

    # Act
    out = build_features(candles)

    # Assert: the 20-bar Bollinger windows holding bar 70 are null, the others are not.
    width_null = out["bb_width"].is_null().to_list()
    assert width_null[70:90] == [True] * 20
    assert not any(width_null[19:70]) and not any(width_null[90:])


def test_a_null_volume_nulls_its_volume_windows_instead_of_failing() -> None:
    # Arrange: one missing volume (polars' weighted kernel panics on nulls).
    candles = random_candles(11, 120).with_columns(
        pl.when(pl.int_range(pl.len()) == 70).then(None).otherwise(pl.col("volume")).alias("volume")
    )

    # Act
    out = build_features(candles)

    # Assert: OBV slopes whose window holds bar 70 are null (missing, not 0); windows after it are back.
    slope_null = out["obv_slope"].is_null().to_list()
    assert all(slope_null[70:85])
    assert not any(slope_null[30:70]) and not any(slope_null[95:])
    assert out["rsi_14"].null_count() == 14  # price features are untouched
