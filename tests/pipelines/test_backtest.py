"""Backtest scenarios: fees are paid, stops fill at the stop, the random baseline sizes like the model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from pipelines.backtest import model_and_baseline, run_backtest
from pipelines.config import BacktestConfig
from pipelines.trading.config import TradingConfig

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TRADING = TradingConfig()
MAJORS = frozenset({"BTC"})


def _frame(closes: list[float], symbol: str = "BTC/USDT", lows: dict[int, float] | None = None) -> pl.DataFrame:
    lows = lows or {}
    rows = []
    for i, close in enumerate(closes):
        prev = closes[i - 1] if i else close
        rows.append(
            (symbol, T0 + timedelta(minutes=5 * i), prev, max(prev, close), min(prev, close, lows.get(i, close)), close)
        )
    return pl.DataFrame(rows, schema=["symbol", "ts", "open", "high", "low", "close"], orient="row")


def _zigzag(n: int, step: float = 0.003) -> list[float]:
    """Alternating up/down bars of `step`: payoff statistics exist, and the direction is forecastable."""
    closes = [100.0]
    for i in range(1, n):
        closes.append(closes[-1] * (1 + step if i % 2 else 1 - step))
    return closes


def test_flat_prices_lose_exactly_the_fees_and_slippage() -> None:
    frame = _frame([100.0] * 400)
    config = BacktestConfig(fee_per_side=0.001, slippage_per_side=0.0)

    result = run_backtest(
        frame, np.full(400, 0.6), majors=MAJORS, timeframe="5m", config=config, trading=TRADING,
        mode="random", entry_probability=1.0, keep_trades=True,
    )

    assert result.trades > 10
    for trade in result.trade_log:
        notional = trade.entry_price * trade.size
        assert trade.fees == pytest.approx(Decimal("0.002") * notional, rel=Decimal("1e-9"))
        assert trade.pnl == pytest.approx(-trade.fees, rel=Decimal("1e-9"))
        assert trade.rule in {"time_stop", "end_of_data"}  # flat: no gain after 5 minutes
    assert result.total_return < 0 and result.win_rate == 0.0
    assert result.fees_paid == pytest.approx(-result.total_return * 10_000, rel=1e-6)


def test_a_crash_bar_fills_a_long_at_its_hard_stop_and_a_short_at_its_target() -> None:
    closes = [*_zigzag(60), 100.0, 100.0, 100.0]
    frame = _frame(closes, lows={61: 98.0})  # bar 61 trades 2% below the previous close
    p = np.full(len(closes), 0.5)
    config = BacktestConfig(fee_per_side=0.0, slippage_per_side=0.0)

    result = run_backtest(
        frame, p, majors=MAJORS, timeframe="5m", config=config, trading=TRADING,
        mode="random", entry_probability=1.0, keep_trades=True,
    )

    crash_close = T0 + timedelta(minutes=5 * 62)
    trade = next(t for t in result.trade_log if t.exit_time == crash_close)
    if trade.side.value == "buy":
        stop = Decimal(str(TRADING.exits.hard_stop_major))
        assert trade.rule == "hard_stop" and trade.exit_price == trade.entry_price * (1 - stop)
        assert trade.net_return == pytest.approx(-float(stop), rel=1e-6)
    else:  # the same bar is a short's take profit, filled at the target, not at the low
        target = Decimal(str(TRADING.exits.take_profit))
        assert trade.rule == "take_profit" and trade.exit_price == trade.entry_price * (1 - target)


def test_a_good_forecast_beats_the_random_baseline_with_the_same_sizing() -> None:
    closes = _zigzag(3000, step=0.006)
    frame = _frame(closes)
    up_next = np.r_[np.diff(closes) > 0, False]
    p = np.where(up_next, 0.8, 0.2)
    config = BacktestConfig(fee_per_side=0.0005, slippage_per_side=0.0001)

    model, baseline = model_and_baseline(frame, p, majors=MAJORS, timeframe="5m", config=config, trading=TRADING)

    assert model.trades > 50 and baseline.trades > 50
    assert model.sharpe > 1.0 > baseline.sharpe
    assert model.win_rate > baseline.win_rate
    assert abs(baseline.trades - model.trades) / model.trades < 0.3  # entries at the model's rate


def test_baseline_sizes_through_the_same_kelly_and_caps() -> None:
    closes = _zigzag(400)
    frame = _frame(closes)
    p = np.full(len(closes), 0.7)
    config = BacktestConfig(fee_per_side=0.0, slippage_per_side=0.0)
    kwargs = {"majors": MAJORS, "timeframe": "5m", "config": config, "trading": TRADING, "keep_trades": True}

    first = run_backtest(frame, p, mode="random", entry_probability=1.0, **kwargs).trade_log[0]

    # Before any recalibration: initial Kelly x confidence of equity, below the 12% major cap.
    expected = Decimal(10_000) * Decimal(str(TRADING.sizing.initial_kelly_fraction * 0.7))
    assert first.entry_price * first.size == pytest.approx(expected, rel=Decimal("1e-6"))


def test_the_model_long_is_stopped_at_the_stop_level_by_the_crash_bar() -> None:
    closes = [*_zigzag(60), 100.0, 100.0, 100.0]
    frame = _frame(closes, lows={61: 98.0})
    p = np.full(len(closes), 0.5)
    p[60] = 0.99  # one confident long at the close of bar 60
    config = BacktestConfig(fee_per_side=0.0005, slippage_per_side=0.0)

    result = run_backtest(frame, p, majors=MAJORS, timeframe="5m", config=config, trading=TRADING, keep_trades=True)

    assert [t.rule for t in result.trade_log] == ["hard_stop"]
    trade = result.trade_log[0]
    assert trade.side.value == "buy"
    assert trade.exit_price == trade.entry_price * (1 - Decimal(str(TRADING.exits.hard_stop_major)))
    stop = TRADING.exits.hard_stop_major
    assert trade.net_return == pytest.approx(-stop - 0.0005 - 0.0005 * (1 - stop), rel=1e-6)  # both fees
