"""The nightly backtest and the engine take the same decisions on the same events (one test feeds both).

The same bars go to `pipelines.backtest.run_backtest` and, as books, signals and trades through the
paper broker, to the engine's directional strategy. The payoff statistics and volatility the backtest
computes per bar travel in the signals, so both call `pipelines.trading.directional` with the same
inputs. Bars have no wicks (high/low = max/min of open and close, open = the previous close), so the
bar-level exit checks and the engine's checks at each close see the same prices; p_up stays >= 0.5 so
the backtest takes longs only (spot) and the EV trail stays quiet.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import polars as pl

from pipelines.backtest import _prepare, run_backtest
from pipelines.config import BacktestConfig
from pipelines.trading.config import DeploymentConfig, KillSwitchConfig, PaperConfig, TradingConfig
from tests.serving.engine import conftest as engine_fixtures
from tests.serving.engine.conftest import Harness

market_venue = engine_fixtures.market_venue  # the engine fixtures, registered here by name
paper = engine_fixtures.paper
BARS = 240
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def bars(seed: int = 7) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.004, BARS))), 2)
    opens = np.concatenate([[100.0], closes[:-1]])
    frame = pl.DataFrame(
        {
            "symbol": ["BTC/USDT"] * BARS,
            "ts": [T0 + timedelta(minutes=5 * i) for i in range(BARS)],
            "open": opens,
            "high": np.maximum(opens, closes),
            "low": np.minimum(opens, closes),
            "close": closes,
        }
    )
    p_up = np.where(rng.random(BARS) < 0.5, 0.55, 0.97)
    return frame, p_up


def trading() -> TradingConfig:
    return TradingConfig(
        paper=PaperConfig(latency_ms=0, fill_at_limit_price=True),
        kill=KillSwitchConfig(
            deployment=DeploymentConfig(active_phase=None),
            consecutive_losses_pause=1000,
            consecutive_losses_reduce=1000,
            max_symbol_exposure_share=1.0,
        ),
    )


def test_backtest_and_engine_enter_at_the_same_bars_with_the_same_sizes(paper: Callable[..., Harness]) -> None:
    # Arrange: the same bars for both; the backtest's costs match the paper venue's.
    frame, p_up = bars()
    spread = 0.0001  # one 0.01 tick at ~100
    config = BacktestConfig(fee_per_side=0.001, slippage_per_side=0.0, spread=spread, payoff_lookback_bars=20)
    cfg = trading()
    result = run_backtest(
        frame, p_up, majors=frozenset({"BTC"}), timeframe="5m", config=config, trading=cfg, keep_trades=True
    )
    stats = _prepare(frame, p_up, config.payoff_lookback_bars)
    h = paper(cfg, expected_slippage=0.0)

    # Act: each bar's close as a book (bid = close), its signal, then a trade through the resting orders.
    for row in stats.iter_rows(named=True):
        h.clock.now = row["ts"] + timedelta(minutes=5)
        close = Decimal(repr(row["close"]))
        h.book("BTC/USDT", str(close), str(close + Decimal("0.01")))
        h.trade("BTC/USDT", str(close + Decimal("0.01")), "1000")  # fills an exit resting at the ask
        h.engine.tick()
        ready = row["avg_win"] is not None and row["volatility"] is not None
        h.signal(
            "BTC/USDT",
            p_up=row["p_up"],
            volatility=row["volatility"] if ready else None,
            avg_win=row["avg_win"] if ready else 0.0,
            avg_loss=row["avg_loss"] if ready else 0.0,
            spread=spread,
        )
        h.engine.tick()
        h.trade("BTC/USDT", str(close), "1000")  # fills an entry resting at the bid

    # Assert: the same entries (time and size) and the same exit rules.
    entries = [s.order for s in h.orders() if s.purpose == "entry" and s.order.filled > 0]
    assert len(result.trade_log) >= 5, "the scenario must trade"
    assert [o.created_at for o in entries] == [t.entry_time for t in result.trade_log]
    for order, trade in zip(entries, result.trade_log, strict=True):
        assert abs(order.size - trade.size) <= trade.size * Decimal("0.005")
    closed = h.store.closed_trades()
    backtest_rules = [t.rule for t in result.trade_log if t.rule != "end_of_data"]
    assert [c.exit_reason.split(":")[0].split()[-1] for c in closed] == backtest_rules
