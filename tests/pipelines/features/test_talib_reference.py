"""The TA features against TA-Lib (an independent C implementation) on real 5m candles.

Seeding follows TA-Lib's Wilder convention (see `pipelines.features.batch`), so after TA-Lib's own
lookback the values agree to rounding. Documented differences, excluded from the comparison:

- MFI: TA-Lib writes 0 when the window's total money flow is below 1 quote unit; ours is the ratio
  (null only when the flow is exactly 0).
- RSI / MFI / ADX: TA-Lib writes 0 for undefined ratios (flat prices); ours is null. None occur in the
  pairs compared here (the assertion on null positions would catch one).
- TA-Lib keeps MFI's window sums by adding and subtracting, so a window without any positive flow can
  read 1e-14 instead of 0: 0-100 scaled features get an absolute tolerance of 1e-9.
- trend_regime: when SMA 20 and SMA 60 are equal up to 1e-9 (flat stretches) ours is 0 by its dead
  band while TA-Lib's sign follows the rounding noise; such bars are not compared.
- obv_slope is ours: TA-Lib ``LINEARREG_SLOPE(OBV, 20) / SMA(volume, 20)``. TA-Lib regresses the OBV
  level, which grows to ~1e9 over the sample and costs digits; our weights on the increments do not.
  Hence an absolute tolerance of 1e-7 (the feature is O(0.1-1)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.features import build_features
from tests.pipelines.features._support import read_candles

talib = pytest.importorskip("talib", reason="TA-Lib (pip install TA-Lib) is the reference implementation")

pytestmark = pytest.mark.realdata
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "PEPE/USDT", "BIFI/USDT")
BARS = 4000


@pytest.fixture(scope="module")
def candles_and_features(shared_data: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    candles = read_candles(shared_data, SYMBOLS, BARS)
    return candles, build_features(candles)


def _reference(d: pl.DataFrame) -> dict[str, np.ndarray]:
    h, lo, c, v = (d[k].to_numpy() for k in ("high", "low", "close", "volume"))
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    return {
        "rsi_14": talib.RSI(c, 14),
        "roc_1": talib.ROCR(c, 1) - 1.0,
        "roc_5": talib.ROCR(c, 5) - 1.0,
        "bb_width": (upper - lower) / middle,
        "atr_pct": talib.ATR(h, lo, c, 14) / c,
        "adx_14": talib.ADX(h, lo, c, 14),
        "mfi_14": talib.MFI(h, lo, c, v, 14),
        "obv_slope": talib.LINEARREG_SLOPE(talib.OBV(c, v), 20) / talib.SMA(v, 20),
        "vol_regime": talib.ATR(h, lo, c, 20) / talib.ATR(h, lo, c, 60),
        "trend_regime": np.sign(talib.SMA(c, 20) - talib.SMA(c, 60)),
        "volume_regime": talib.SMA(v, 20) / talib.SMA(v, 60),
    }


# (relative, absolute) tolerance; default (1e-10, 1e-12).
TOLERANCE = {
    "obv_slope": (1e-6, 1e-7),
    "bb_width": (1e-9, 1e-12),
    "rsi_14": (1e-10, 1e-9),
    "mfi_14": (1e-10, 1e-9),
    "adx_14": (1e-10, 1e-9),
}


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_ta_features_match_talib(candles_and_features: tuple[pl.DataFrame, pl.DataFrame], symbol: str) -> None:
    # Arrange
    candles, features = candles_and_features
    d = candles.filter(pl.col("symbol") == symbol)
    ours = features.filter(pl.col("symbol") == symbol)
    money_flow = (d["high"] + d["low"] + d["close"]).to_numpy() / 3.0 * d["volume"].to_numpy()
    small_flow = np.convolve(money_flow, np.ones(14), "full")[: d.height] < 1.0  # TA-Lib's MFI cutoff

    # Act
    reference = _reference(d)

    # Assert
    assert d.height == BARS
    for name, ref in reference.items():
        mine = ours[name].to_numpy().astype(np.float64)
        if name == "mfi_14":
            ref = np.where(small_flow, np.nan, ref)
            mine = np.where(small_flow, np.nan, mine)
        if name == "trend_regime":
            sma_fast, sma_slow = talib.SMA(d["close"].to_numpy(), 20), talib.SMA(d["close"].to_numpy(), 60)
            tie = np.abs(sma_fast - sma_slow) <= 1e-9 * np.abs(sma_slow)
            assert tie.sum() < 0.01 * BARS, "ties should be rare"
            ref = np.where(tie, np.nan, ref)
            mine = np.where(tie, np.nan, mine)
        # Same warm-up: null exactly where TA-Lib has no value yet.
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(ref), err_msg=f"{symbol} {name} nulls")
        rel, abs_ = TOLERANCE.get(name, (1e-10, 1e-12))
        np.testing.assert_allclose(mine, ref, rtol=rel, atol=abs_, equal_nan=True, err_msg=f"{symbol} {name}")
