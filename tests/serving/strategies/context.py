"""A small, honest `StrategyContext` for strategy tests until the engine's own is merged.

It keeps books, instruments, positions and open orders like the engine would, and its `submit` plays
the risk component: refused while entries are off (kill switch / pause), above the phase's per-trade
notional cap, or below the venue minimum; it never enlarges an order. `fill(order_id, size, price, fee)`
simulates the venue executing a working order (position and open order updated, `on_fill` delivered).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from pipelines.trading.instruments import MarketInfo
from pipelines.trading.orders import Fill, Liquidity
from serving.engine.events import BookEvent
from serving.engine.persistence.window_pnl import WindowSettlement
from serving.engine.strategy import (
    FillEvent,
    OpenOrderView,
    OrderIntent,
    PortfolioView,
    Strategy,
    SubmitResult,
)


@dataclass
class HonestContext:
    strategy_id: str
    clock: list[datetime]
    per_trade_cap: Decimal = Decimal(20)
    books: dict[tuple[str, str], BookEvent] = field(default_factory=dict)
    positions: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    orders: dict[str, tuple[OrderIntent, Decimal]] = field(default_factory=dict)  # id -> (intent, remaining)
    submitted: list[OrderIntent] = field(default_factory=list)
    cancelled: list[tuple[str, str]] = field(default_factory=list)
    records: list[tuple[str, str, str]] = field(default_factory=list)
    alerts: list[tuple[str, str]] = field(default_factory=list)
    saved: dict[str, str] = field(default_factory=dict)
    settled: list[WindowSettlement] = field(default_factory=list)
    kill_reason: str | None = None
    tick: Decimal = Decimal("0.01")
    taker_fee: Decimal = Decimal(0)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def now(self) -> datetime:
        return self.clock[0]

    def instrument(self, symbol: str, venue: str = "") -> MarketInfo:
        return MarketInfo(
            symbol, symbol, self.tick, Decimal("0.01"), Decimal(0), Decimal(0), self.taker_fee, Decimal(5)
        )

    def book(self, symbol: str, venue: str = "") -> BookEvent | None:
        return self.books.get((venue, symbol))

    def portfolio(self) -> PortfolioView:
        return PortfolioView(self.strategy_id, Decimal(200), Decimal(200), Decimal(0), Decimal(0))

    def position(self, symbol: str, venue: str = "") -> Decimal:
        return self.positions.get((venue, symbol), Decimal(0))

    def open_orders(self, symbol: str | None = None, venue: str | None = None) -> list[OpenOrderView]:
        return [
            OpenOrderView(oid, i.venue, i.symbol, i.side, i.price, rem, i.tag)
            for oid, (i, rem) in self.orders.items()
            if symbol in (None, i.symbol) and venue in (None, i.venue)
        ]

    def entries_allowed(self, symbol: str | None = None) -> tuple[bool, str]:
        return (False, self.kill_reason) if self.kill_reason else (True, "")

    def submit(self, intent: OrderIntent) -> SubmitResult:
        allowed, why = self.entries_allowed(intent.symbol)
        if not allowed and not intent.is_exit:
            return SubmitResult(False, reason=why)
        notional = intent.size * (intent.price or Decimal(1))
        if notional > self.per_trade_cap and not intent.is_exit:
            return SubmitResult(False, reason=f"phase cap: {notional} > {self.per_trade_cap} per trade")
        if intent.size < self.instrument(intent.symbol).min_size:
            return SubmitResult(False, reason="below the venue minimum")
        order_id = f"o{next(self._ids)}"
        self.orders[order_id] = (intent, intent.size)
        self.submitted.append(intent)
        return SubmitResult(True, order_id, intent.size)

    def cancel(self, order_id: str, reason: str = "") -> None:
        if self.orders.pop(order_id, None) is not None:
            self.cancelled.append((order_id, reason))

    def state(self) -> dict[str, str]:
        return dict(self.saved)

    def save_state(self, values: Mapping[str, str]) -> None:
        self.saved.update(values)

    def record(self, action: str, reason: str, symbol: str = "") -> None:
        self.records.append((action, reason, symbol))

    def alert(self, kind: str, message: str) -> None:
        self.alerts.append((kind, message))

    def window_settled(self, result: WindowSettlement) -> None:
        self.settled.append(result)

    # ---- test drivers --------------------------------------------------------------------------
    def fill(self, strategy: Strategy, order_id: str, size: Decimal, price: Decimal, fee: Decimal = Decimal(0)) -> None:
        intent, remaining = self.orders[order_id]
        left = remaining - size
        if left > 0:
            self.orders[order_id] = (intent, left)
        else:
            del self.orders[order_id]
        key = (intent.venue, intent.symbol)
        signed = size if intent.side.value == "buy" else -size
        self.positions[key] = self.positions.get(key, Decimal(0)) + signed
        fill = Fill(f"f{next(self._ids)}", size, price, fee, Liquidity.TAKER, self.now())
        strategy.on_fill(
            self, FillEvent(order_id, order_id, intent.venue, intent.symbol, intent.side, fill, intent.tag)
        )
