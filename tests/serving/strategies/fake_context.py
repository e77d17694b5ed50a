"""A small, honest StrategyContext for strategy tests (the engine is not merged yet).

`BookContext` keeps what an engine would: a clock, one instrument, the latest book, the position, the
strategy's open orders. `submit` refuses like the risk component would (entries blocked unless the
intent is an exit, a post-only order that would cross, an order the venue would reject); `cancel`
only requests (the order rests until `confirm_cancels`, as at a venue); `fill` moves the position and
reports the fill and then the order update back to the strategy; `trade_through` fills resting orders
the way paper trading does (only when a trade prints through their price, up to its size).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from pipelines.trading.instruments import MarketInfo, Side, rejection_reason
from pipelines.trading.orders import Fill, Liquidity, OrderState
from serving.engine.events import BookEvent, TradeEvent
from serving.engine.strategy import (
    ExecutionStyle,
    FillEvent,
    OpenOrderView,
    OrderIntent,
    OrderUpdate,
    PortfolioView,
    Strategy,
    SubmitResult,
)


class BookContext:
    def __init__(self, market: MarketInfo, start: datetime) -> None:
        self.market = market
        self.strategy_id = "mm-test"
        self.clock = start
        self.latest: BookEvent | None = None
        self.pos = Decimal(0)
        self.orders: dict[str, OpenOrderView] = {}
        self.cancel_requested: set[str] = set()
        self.submitted: list[OrderIntent] = []
        self.refusals: list[str] = []
        self.records: list[tuple[str, str]] = []
        self.blocked = ""
        self._ids = itertools.count(1)
        self._fills = itertools.count(1)

    # ---- the StrategyContext protocol ----
    def now(self) -> datetime:
        return self.clock

    def instrument(self, symbol: str, venue: str = "") -> MarketInfo:
        assert symbol == self.market.symbol
        return self.market

    def book(self, symbol: str, venue: str = "") -> BookEvent | None:
        return self.latest

    def portfolio(self) -> PortfolioView:
        return PortfolioView(self.strategy_id, Decimal(1000), Decimal(1000), Decimal(0), Decimal(0))

    def position(self, symbol: str, venue: str = "") -> Decimal:
        return self.pos

    def open_orders(self, symbol: str | None = None, venue: str | None = None) -> list[OpenOrderView]:
        return [o for o in self.orders.values() if symbol is None or o.symbol == symbol]

    def submit(self, intent: OrderIntent) -> SubmitResult:
        assert intent.style is ExecutionStyle.LIMIT and intent.post_only and intent.price is not None
        reason = ""
        if self.blocked and not intent.is_exit:
            reason = self.blocked
        elif self.latest is not None and (
            (intent.side is Side.BUY and intent.price >= self.latest.ask)
            or (intent.side is Side.SELL and intent.price <= self.latest.bid)
        ):
            reason = "post-only order would cross the book"
        else:
            reason = rejection_reason(self.market, intent.price, intent.size) or ""
        if reason:
            self.refusals.append(reason)
            return SubmitResult(accepted=False, reason=reason)
        order_id = f"o{next(self._ids)}"
        self.submitted.append(intent)
        self.orders[order_id] = OpenOrderView(
            order_id, "", intent.symbol, intent.side, intent.price, intent.size, intent.tag
        )
        return SubmitResult(accepted=True, order_id=order_id, size=intent.size)

    def cancel(self, order_id: str, reason: str = "") -> None:
        if order_id in self.orders:
            self.cancel_requested.add(order_id)

    def entries_allowed(self, symbol: str | None = None) -> tuple[bool, str]:
        return (not self.blocked, self.blocked)

    def state(self) -> dict[str, str]:
        return {}

    def save_state(self, values: Mapping[str, str]) -> None:
        return None

    def record(self, action: str, reason: str, symbol: str = "") -> None:
        self.records.append((action, reason))

    def alert(self, kind: str, message: str) -> None:
        self.records.append((kind, message))

    # ---- what the venue and the engine would do ----
    def quotes(self) -> dict[Side, OpenOrderView]:
        """The live orders that are not being cancelled, by side."""
        return {o.side: o for o in self.orders.values() if o.order_id not in self.cancel_requested}

    def confirm_cancels(self, strategy: Strategy) -> None:
        for order_id in sorted(self.cancel_requested):
            order = self.orders.pop(order_id, None)
            if order is not None:
                strategy.on_order_update(self, self._update(order, OrderState.CANCELLED, order.remaining))
        self.cancel_requested.clear()

    def fill(self, strategy: Strategy, order_id: str, size: Decimal | None = None) -> None:
        order = self.orders[order_id]
        size = order.remaining if size is None else size
        self.pos += size if order.side is Side.BUY else -size
        left = order.remaining - size
        fill = Fill(f"f{next(self._fills)}", size, order.price or Decimal(0), Decimal(0), Liquidity.MAKER, self.clock)
        if left > 0:
            self.orders[order_id] = OpenOrderView(order_id, "", order.symbol, order.side, order.price, left, order.tag)
        else:
            del self.orders[order_id]
            self.cancel_requested.discard(order_id)
        strategy.on_fill(self, FillEvent(order_id, order_id, "", order.symbol, order.side, fill, order.tag))
        state = OrderState.PARTIALLY_FILLED if left > 0 else OrderState.FILLED
        strategy.on_order_update(self, self._update(order, state, left))

    def _update(self, order: OpenOrderView, state: OrderState, remaining: Decimal) -> OrderUpdate:
        filled = Decimal(0)
        return OrderUpdate(
            order.order_id, order.order_id, "", order.symbol, order.side, state, filled, remaining, self.clock
        )

    def send_book(self, strategy: Strategy, bid: str, ask: str, after: float = 0.1) -> None:
        self.clock += timedelta(seconds=after)
        self.latest = BookEvent(self.market.symbol, Decimal(bid), Decimal(ask), Decimal(5), Decimal(5), self.clock)
        strategy.on_book(self, self.latest)

    def trade_through(self, strategy: Strategy, trade: TradeEvent) -> None:
        """Fill resting orders the print trades through (a sell below a bid, a buy above an ask)."""
        left = trade.size
        for order in sorted(self.orders.values(), key=lambda o: o.order_id):
            price = order.price or Decimal(0)
            buy_through = order.side is Side.BUY and trade.aggressor is Side.SELL and trade.price < price
            sell_through = order.side is Side.SELL and trade.aggressor is Side.BUY and trade.price > price
            through = buy_through or sell_through
            if through and left > 0:
                size = min(order.remaining, left)
                left -= size
                self.fill(strategy, order.order_id, size)
