"""The engine's `StrategyContext`: what one strategy sees of the engine, and its only way to act.

Reads are snapshots of the portfolio (this strategy's slice), the books and the instruments; `submit`
goes through the risk component and then to the execution of the intent's venue; `cancel` only reaches
this strategy's own orders. One context per strategy, made by the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from pipelines.errors import RetryableError
from pipelines.trading.instruments import MarketInfo
from serving.engine.broker import BrokerError
from serving.engine.events import BookEvent
from serving.engine.persistence.window_pnl import WindowSettlement
from serving.engine.routing import settle_window_positions
from serving.engine.store import StoreError
from serving.engine.strategy import OpenOrderView, OrderIntent, PortfolioView, RiskLimits, SubmitResult
from serving.trading_metrics import record_window_settlement

if TYPE_CHECKING:
    from serving.engine.engine import TradingEngine


class EngineContext:
    def __init__(self, engine: TradingEngine, strategy_id: str, default_venue: str = "") -> None:
        self._engine = engine
        self._id = strategy_id
        self._venue = default_venue

    @property
    def strategy_id(self) -> str:
        return self._id

    def _v(self, venue: str | None) -> str:
        return venue if venue else self._venue

    def now(self) -> datetime:
        return self._engine.now()

    def instrument(self, symbol: str, venue: str = "") -> MarketInfo:
        return self._engine.execution(self._v(venue)).market(symbol)

    def book(self, symbol: str, venue: str = "") -> BookEvent | None:
        v = self._v(venue)
        top = self._engine.portfolio.books.get((v, symbol))
        if top is None:
            return None
        return BookEvent(symbol, top.bid, top.ask, top.bid_size, top.ask_size, top.ts, v)

    def portfolio(self) -> PortfolioView:
        engine = self._engine
        view = engine.portfolio.view(self._id)
        cash = engine.portfolio.cash.get(self._venue, Decimal(0))
        if engine.portfolio.allocations.get(self._id) is not None:
            room = view.equity - engine.portfolio.exposure(self._id) - engine.pending_entries(self._id)
            cash = min(cash, max(room, Decimal(0)))
        return replace(view, available=cash)

    def position(self, symbol: str, venue: str = "") -> Decimal:
        pos = self._engine.portfolio.position(self._id, self._v(venue), symbol)
        return pos.signed_size if pos is not None else Decimal(0)

    def open_orders(self, symbol: str | None = None, venue: str | None = None) -> list[OpenOrderView]:
        out: list[OpenOrderView] = []
        for ex in self._engine.executions.values():
            if venue is None or ex.venue == self._v(venue):
                out.extend(ex.open_orders(self._id, symbol))
        return out

    def submit(self, intent: OrderIntent) -> SubmitResult:
        if not intent.venue and self._venue:
            intent = replace(intent, venue=self._venue)
        return self._engine.submit_intent(self._id, intent)

    def cancel(self, order_id: str, reason: str = "") -> None:
        self._engine.cancel_intent(self._id, order_id, reason or "cancelled by the strategy")

    def available_balance(self, venue: str, asset: str) -> Decimal | None:
        """`asset` free on `venue`'s broker (its `balances()`); None when the venue or asset is unknown."""
        ex = self._engine.executions.get(self._v(venue))
        if ex is None:
            return None
        try:
            value = ex.broker.balances().get(asset)
        except (BrokerError, RetryableError):  # advisory: the strategy sizes without it
            return None
        return Decimal(str(value)) if value is not None and not isinstance(value, Decimal) else value

    def entries_allowed(self, symbol: str | None = None) -> tuple[bool, str]:
        limits = self.risk_limits(symbol)
        return limits.allowed, limits.reason

    def risk_limits(self, symbol: str | None = None) -> RiskLimits:
        return self._engine.risk_limits(self._id, symbol)

    def state(self) -> dict[str, str]:
        return self._engine.persistence.strategy_state(self._id)

    def save_state(self, values: Mapping[str, str]) -> None:
        self._engine.persistence.save_strategy_state(self._id, values, self._engine.now())

    def record(self, action: str, reason: str, symbol: str = "") -> None:
        self._engine.record(self._id, self._engine.now(), symbol, action, reason)

    def alert(self, kind: str, message: str) -> None:
        self._engine.alert(self._engine.now(), kind, f"[{self._id}] {message}")

    def window_settled(self, result: WindowSettlement) -> None:
        """The window's PnL row (store) and the per-strategy window metrics; a store failure is counted."""
        record_window_settlement(self._id, float(result.pnl), float(result.fees), result.settled_side)
        start_s = int(result.window_start.timestamp())
        try:
            # the engine's positions of that window close too (redeemed at 1 or 0), not only the strategy's book
            settle_window_positions(
                self._engine, self._id, self._v(result.venue), start_s, result.settled_side, self._engine.now()
            )
            self._engine.store.record_window_pnl(result)
        except StoreError as exc:
            self._engine.persistence.error(self._engine.now(), exc)
