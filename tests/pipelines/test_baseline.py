"""The random-entry baseline is like for like: long only on spot, the model's entry count, same sizing and
exits, many seeds; ties count the same way in every payoff estimate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.backtest import _prepare
from pipelines.baseline import cost_variants, model_and_baselines, random_entries
from pipelines.config import BacktestConfig
from pipelines.research_config import BaselineConfig
from pipelines.trading.config import TradingConfig

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TRADING = TradingConfig()
MAJORS = frozenset({"BTC"})


def _frame(closes: dict[str, list[float]]) -> pl.DataFrame:
    rows = []
    for symbol, series in closes.items():
        for i, close in enumerate(series):
            prev = series[i - 1] if i else close
            rows.append((symbol, T0 + timedelta(minutes=5 * i), prev, max(prev, close), min(prev, close), close))
    return pl.DataFrame(rows, schema=["symbol", "ts", "open", "high", "low", "close"], orient="row")


def _zigzag(n: int, step: float = 0.006, start: float = 100.0) -> list[float]:
    closes = [start]
    for i in range(1, n):
        closes.append(closes[-1] * (1 + step if i % 2 else 1 - step))
    return closes


def test_a_baseline_on_spot_never_shorts_and_enters_as_often_as_asked() -> None:
    frame = _frame({"BTC/USDT": _zigzag(500), "ETH/USDT": _zigzag(500, start=50.0)})

    entries = random_entries(frame, 40, seed=3, long_only=True)
    both = random_entries(frame, 40, seed=3, long_only=False)

    assert (entries != 0).sum() == 40 and set(np.unique(entries)) == {0, 1}  # no -1: spot cannot short
    assert set(np.unique(both)) == {-1, 0, 1}
    last_bars = frame.select(pl.col("ts") == pl.col("ts").max().over("symbol"))["ts"].to_numpy()
    assert not entries[last_bars].any()  # never on a symbol's last bar (nothing left to exit on)
    assert np.array_equal(entries, random_entries(frame, 40, seed=3, long_only=True))  # seeded


def test_the_baseline_runs_many_seeds_long_only_with_the_models_entry_count() -> None:
    closes = _zigzag(3000)
    frame = _frame({"BTC/USDT": closes, "ETH/USDT": _zigzag(3000, start=50.0)})
    up_next = np.r_[np.diff(closes) > 0, False]
    p = np.tile(np.where(up_next, 0.8, 0.2), 2)
    config = BacktestConfig(fee_per_side=0.0005, slippage_per_side=0.0001)
    baseline = BaselineConfig(seeds=12)

    model, report = model_and_baselines(
        frame, p, majors=MAJORS, timeframe="5m", config=config, trading=TRADING, baseline=baseline
    )

    assert all(t.side.value == "buy" for t in model.trade_log)  # the model is long only on spot too
    assert len(report.sharpes) == 12 and report.sharpe_std > 0
    assert all(abs(t - model.trades) / model.trades < 0.3 for t in report.trades)  # a similar entry count
    assert all(t.side.value == "buy" for t in report.first.trade_log)
    assert report.beats_seed_share == 1.0 and model.sharpe > report.sharpe_mean
    assert report.pairs_traded == 2 and report.beats_pair_share == 1.0
    metrics = report.metrics()
    assert metrics["baseline_seeds"] == 12 and metrics["baseline_sharpe"] == metrics["baseline_sharpe_mean"]
    costs = cost_variants(
        frame, p, majors=MAJORS, timeframe="5m", config=config, trading=TRADING, baseline=baseline, taker=model
    )
    assert costs["bt_taker_sharpe"] == model.sharpe
    assert costs["bt_maker_total_return"] >= costs["bt_taker_total_return"]  # cheaper entries never cost more


def test_ties_are_neither_wins_nor_losses_in_the_payoff_estimates() -> None:
    # 10 bars of +1%, 10 of -1% and 20 flat bars, repeated: a tie share of 1/2
    pattern = [0.01] * 10 + [-0.01] * 10 + [0.0] * 20
    closes = [100.0]
    for r in pattern * 10:
        closes.append(closes[-1] * (1 + r))
    frame = _frame({"BTC/USDT": closes})

    data = _prepare(frame, np.full(len(closes), 0.5), lookback=len(pattern))

    last = data.tail(1)
    moved = 0.5
    # W = mean gain of the up bars (1%), L = mean loss of the down bars (1%), each times the move share
    assert last["avg_win"].item() == pytest.approx(0.01 * moved, rel=1e-6)
    assert last["avg_loss"].item() == pytest.approx(0.01 * moved, rel=1e-6)
