"""Execution through the strategy contract: LIMIT intents (post-only, IOC), cancels, updates and fills
reach the strategy that owns the order; the risk component reduces an oversized intent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from pipelines.trading.instruments import Side
from pipelines.trading.orders import OrderKind, OrderState
from serving.engine.config import StrategyEntry
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.engine.strategy import (
    ExecutionStyle,
    FillEvent,
    OrderIntent,
    OrderUpdate,
    StrategyContext,
    SubmitResult,
    TimeInForce,
)
from serving.strategies.registry import StrategyEnv, register
from tests.serving.engine.conftest import Harness, graduated


class Quoter:
    """A minimal strategy: sends what the test asks for and keeps every callback it gets."""

    def __init__(self, strategy_id: str) -> None:
        self.strategy_id = strategy_id
        self.ctx: StrategyContext | None = None
        self.updates: list[OrderUpdate] = []
        self.fills: list[FillEvent] = []

    def on_start(self, ctx: StrategyContext) -> None:
        self.ctx = ctx

    def send(self, intent: OrderIntent) -> SubmitResult:
        assert self.ctx is not None
        return self.ctx.submit(intent)

    def on_book(self, ctx: StrategyContext, event: BookEvent) -> None: ...

    def on_trade(self, ctx: StrategyContext, event: TradeEvent) -> None: ...

    def on_signal(self, ctx: StrategyContext, event: SignalEvent) -> None: ...

    def on_order_update(self, ctx: StrategyContext, update: OrderUpdate) -> None:
        self.updates.append(update)

    def on_fill(self, ctx: StrategyContext, fill: FillEvent) -> None:
        self.fills.append(fill)

    def on_timer(self, ctx: StrategyContext, now: datetime) -> None: ...

    def on_stop(self, ctx: StrategyContext) -> None: ...


register("test_quoter", lambda entry, env: Quoter(entry.id), replace=True)
QUOTER = (StrategyEntry(id="quoter", kind="test_quoter"), StrategyEntry(id="directional", kind="directional"))


def quoter(h: Harness) -> Quoter:
    strategy = h.engine.strategy("quoter")
    assert isinstance(strategy, Quoter)
    return strategy


def test_a_post_only_limit_rests_at_its_price_and_its_fill_reaches_its_strategy(paper: Callable[..., Harness]) -> None:
    h = paper(graduated(), strategies=QUOTER)
    h.book("BTC/USDT", "100.00", "100.01")
    q = quoter(h)
    result = q.send(
        OrderIntent("BTC/USDT", Side.BUY, Decimal("0.5"), Decimal("99.50"), ExecutionStyle.LIMIT, tag="quote-bid")
    )
    assert result.accepted and result.size == Decimal("0.5")
    [stored] = h.orders()
    assert stored.strategy_id == "quoter" and stored.tag == "quote-bid"
    assert stored.order.kind is OrderKind.POST_ONLY and stored.order.price == Decimal("99.50")
    h.advance(0.1)
    h.trade("BTC/USDT", "99.40", "2")
    assert [f.fill.size for f in q.fills] == [Decimal("0.5")] and q.fills[0].order_id == result.order_id
    assert q.updates[-1].state is OrderState.FILLED and q.updates[-1].tag == "quote-bid"
    assert h.engine.contexts["quoter"].position("BTC/USDT") == Decimal("0.5")
    assert h.engine.contexts["directional"].position("BTC/USDT") == 0


def test_an_ioc_limit_is_one_taker_order_and_a_resting_taker_limit_is_refused(paper: Callable[..., Harness]) -> None:
    h = paper(graduated(), strategies=QUOTER)
    h.book("BTC/USDT", "100.00", "100.01")
    q = quoter(h)
    ioc = q.send(
        OrderIntent(
            "BTC/USDT",
            Side.BUY,
            Decimal("0.1"),
            Decimal("100.02"),
            ExecutionStyle.LIMIT,
            post_only=False,
            time_in_force=TimeInForce.IOC,
            tag="hedge",
        )
    )
    assert ioc.accepted
    assert h.orders()[-1].order.kind is OrderKind.IOC
    gtc = q.send(
        OrderIntent("BTC/USDT", Side.BUY, Decimal("0.1"), Decimal("100.02"), ExecutionStyle.LIMIT, post_only=False)
    )
    assert not gtc.accepted and "not supported" in gtc.reason


def test_a_strategy_cancels_its_own_order_only(paper: Callable[..., Harness]) -> None:
    h = paper(graduated(), strategies=QUOTER)
    h.book("BTC/USDT", "100.00", "100.01")
    q = quoter(h)
    result = q.send(OrderIntent("BTC/USDT", Side.BUY, Decimal("0.5"), Decimal("99.50"), ExecutionStyle.LIMIT))
    assert result.order_id is not None
    h.advance(0.1)
    h.engine.contexts["directional"].cancel(result.order_id)  # not its order: nothing happens
    assert h.orders()[-1].order.is_live
    assert len(h.engine.contexts["quoter"].open_orders("BTC/USDT")) == 1
    h.engine.contexts["quoter"].cancel(result.order_id, "requote")
    h.advance(0.1)
    assert h.orders()[-1].order.state is OrderState.CANCELLED
    assert q.updates[-1].state is OrderState.CANCELLED


def test_risk_reduces_an_entry_to_the_phase_cap_and_refuses_below_the_minimum(paper: Callable[..., Harness]) -> None:
    h = paper(strategies=QUOTER)  # phase 1: $20 per trade
    h.book("BTC/USDT", "100.00", "100.01")
    q = quoter(h)
    big = q.send(OrderIntent("BTC/USDT", Side.BUY, Decimal("1"), Decimal("99.00"), ExecutionStyle.LIMIT))
    assert big.accepted and big.size is not None
    assert Decimal(19) < big.size * Decimal("99.00") <= Decimal(20)
    assert "reduced" in big.reason
    tiny = q.send(OrderIntent("ETH/USDT", Side.BUY, Decimal("0.01"), Decimal("99.00"), ExecutionStyle.LIMIT))
    assert not tiny.accepted and "minimum" in tiny.reason


def test_exits_pass_the_risk_component_during_a_kill(paper: Callable[..., Harness]) -> None:
    h = paper(graduated(), strategies=QUOTER)
    h.book("BTC/USDT", "100.00", "100.01")
    q = quoter(h)
    q.send(OrderIntent("BTC/USDT", Side.BUY, Decimal("0.5"), Decimal("99.50"), ExecutionStyle.LIMIT))
    h.advance(0.1)
    h.trade("BTC/USDT", "99.40", "2")
    h.engine.kill("operator")
    entry = q.send(OrderIntent("ETH/USDT", Side.BUY, Decimal("0.5"), Decimal("99.50"), ExecutionStyle.LIMIT))
    assert not entry.accepted and "manual" in entry.reason
    exit_ = q.send(
        OrderIntent("BTC/USDT", Side.SELL, Decimal("0.5"), Decimal("100.50"), ExecutionStyle.LIMIT, is_exit=True)
    )
    assert exit_.accepted


def test_the_registry_passes_the_entry_and_env(paper: Callable[..., Harness]) -> None:
    seen: list[tuple[str, StrategyEnv]] = []

    def factory(entry: StrategyEntry, env: StrategyEnv) -> Quoter:
        seen.append((entry.kind, env))
        return Quoter(entry.id)

    register("test_env", factory, replace=True)
    paper(strategies=(StrategyEntry(id="q2", kind="test_env"),))
    assert seen and seen[0][0] == "test_env" and seen[0][1].quote == "USDT"
