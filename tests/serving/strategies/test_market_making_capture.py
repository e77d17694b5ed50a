"""The strategy on the recorded Binance USD-M BTCUSDT capture (best quotes and trades, exchange time).

Not the capture backtest (that needs the tick-level simulator, with queue position and latency): the
`BookContext` fills a resting quote only when a print trades through it. What it checks on real data:
the estimators fit from the live trades in price units, the strategy quotes nearly all the time,
no quote crosses the book it is sent against, and the inventory stays within the cap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.domain.marketdata import BookTicker, Trade
from pipelines.marketdata.binance_capture import iter_binance_capture
from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.market_making.config import EstimatorConfig, MarketMakingConfig
from serving.engine.events import BookEvent, TradeEvent
from serving.strategies.market_making import MarketMakingStrategy
from tests.serving.strategies.fake_context import BookContext

pytestmark = pytest.mark.realdata

MARKET = MarketInfo(
    symbol="BTC/USDT:USDT",
    venue_symbol_id="BTCUSDT",
    tick_size=Decimal("0.1"),
    lot_size=Decimal("0.001"),
    min_notional=Decimal("100"),
    maker_fee=Decimal("0.0002"),
    taker_fee=Decimal("0.0005"),
)
# gamma per USD at a price of ~61,600 with sigma ~7 USD/sqrt(s): 5e-4 x 49 x 60 s ~ 1.5 USD of skew a clip.
CFG = MarketMakingConfig(
    symbol="BTC/USDT:USDT",
    gamma=5e-4,
    horizon_seconds=60.0,
    order_notional=Decimal("200"),
    max_inventory_clips=5,
    estimator=EstimatorConfig(prior_a=5.0, prior_k=0.2, sigma_prior=5.0),
)


def _events(path: Path):  # type: ignore[no-untyped-def]
    for captured in iter_binance_capture([path], kinds=("trade", "bookTicker")):
        event = captured.event
        if isinstance(event, BookTicker) and event.ts_us is not None:
            ts = datetime.fromtimestamp(event.ts_us / 1e6, UTC)
            yield BookEvent(
                MARKET.symbol,
                Decimal(str(event.bid_price)),
                Decimal(str(event.ask_price)),
                Decimal(str(event.bid_qty)),
                Decimal(str(event.ask_qty)),
                ts,
            )
        elif isinstance(event, Trade):
            ts = datetime.fromtimestamp(event.ts_us / 1e6, UTC)
            side = Side.BUY if event.aggressor_side == "buy" else Side.SELL
            yield TradeEvent(MARKET.symbol, Decimal(str(event.price)), Decimal(str(event.qty)), ts, side)


def test_quotes_the_recorded_usdm_capture(shared_data: Path) -> None:
    path = shared_data / "binance_ticks" / "usdm" / "btcusdt_20240808.gz"
    strategy = MarketMakingStrategy("mm-capture", CFG)
    ctx: BookContext | None = None
    seconds = quoted = 0
    next_second: datetime | None = None
    cap = Decimal(0)
    for event in _events(path):
        if ctx is None:
            ctx = BookContext(MARKET, event.ts)
            strategy.on_start(ctx)
            next_second = event.ts
        ctx.clock = max(ctx.clock, event.ts)
        if isinstance(event, BookEvent):
            ctx.latest = event
            strategy.on_book(ctx, event)
        else:
            strategy.on_trade(ctx, event)
            ctx.trade_through(strategy, event)
        ctx.confirm_cancels(strategy)
        assert next_second is not None
        while ctx.clock >= next_second:  # a 1 s timer, as the engine runs it
            strategy.on_timer(ctx, ctx.clock)
            seconds += 1
            quoted += bool(ctx.quotes())
            next_second += timedelta(seconds=1)
        if strategy.last_plan is not None:
            cap = strategy.last_plan.clip * CFG.max_inventory_clips
            assert abs(ctx.pos) <= cap
    assert ctx is not None and seconds > 300
    fit = strategy.intensity.current(ctx.clock.timestamp())
    assert fit.source == "fit" and 0.01 < fit.k < 5  # per USD; in ticks it would be ten times smaller
    assert 0.5 < strategy.vol.sigma(ctx.clock.timestamp()) < 50
    # The context refuses (like the venue's post-only check) any quote that would cross the book it is
    # sent against: none was.
    assert quoted / seconds > 0.95 and not [r for r in ctx.refusals if "cross" in r]
    assert len(ctx.submitted) > 20 and cap > 0
