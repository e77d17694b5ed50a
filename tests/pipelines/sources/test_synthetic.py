from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from pipelines.sources.synthetic import SyntheticSource

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def _candles(seed: int = 7, days: int = 40) -> pl.DataFrame:
    source = SyntheticSource(as_of=AS_OF, days=days, n_symbols=4, seed=seed)
    return source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=days), AS_OF)


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    assert _candles(seed=1).equals(_candles(seed=1))
    assert not _candles(seed=1).equals(_candles(seed=2))


def test_symbols_are_named_like_real_ones_and_bars_are_consistent() -> None:
    candles = _candles()
    assert sorted(candles["symbol"].unique()) == ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
    assert candles.select((pl.col("low") <= pl.min_horizontal("open", "close")).all()).item()
    assert candles.select((pl.col("high") >= pl.max_horizontal("open", "close")).all()).item()
    assert candles.select((pl.col("low") > 0).all() & (pl.col("volume") >= 0).all()).item()
    assert candles["ts"].dtype == pl.Datetime("us", "UTC")


def test_returns_have_fat_tails_and_volatility_clustering() -> None:
    closes = _candles(days=60).filter(pl.col("symbol") == "BTC/USDT")["close"].to_numpy()
    returns = np.diff(np.log(closes))
    assert stats.kurtosis(returns) > 1.0  # a normal distribution has excess kurtosis 0
    size = np.abs(returns)
    # Clustering: big moves follow big moves, also ten bars later. i.i.d. shocks give ~0 (+-0.01 here).
    assert np.corrcoef(size[:-1], size[1:])[0, 1] > 0.06
    assert np.corrcoef(size[:-10], size[10:])[0, 1] > 0.06


def test_coarser_timeframes_only_include_complete_bars() -> None:
    source = SyntheticSource(as_of=AS_OF, days=10, n_symbols=2)
    daily = source.fetch_candles(["BTC/USDT"], "1d", AS_OF - timedelta(days=5), AS_OF)
    five = source.fetch_candles(["BTC/USDT"], "5m", AS_OF - timedelta(days=5), AS_OF)
    assert len(daily) == 5
    assert daily["volume"].sum() == pytest.approx(five["volume"].sum())
    assert daily["high"].max() == pytest.approx(five["high"].max())
