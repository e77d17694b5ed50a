"""A small, honest StrategyContext for driving the hedge strategy in scenario tests.

Two venues ("primary", "hedge") with a book each, this strategy's signed positions per venue, a balance
per venue, a key/value state store and a clock the test moves. `submit` accepts (or refuses, when the
test scripted a refusal) and records the intent; nothing fills by itself: the test says what the venue
does (`fill`, `update`), in the order a real venue might do it, including the races. `fill` moves the
position first and then calls `on_fill`, as the engine's portfolio would. `restart()` is `kill -9`:
a new strategy object and context on the same persisted state and positions; orders of the dead
process are gone (the engine's clean start cancelled them).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipelines.trading.hedge.config import HedgeConfig
from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.orders import Fill, Liquidity, OrderState
from serving.engine.events import BookEvent
from serving.engine.strategy import (
    FillEvent,
    OpenOrderView,
    OrderIntent,
    OrderUpdate,
    PortfolioView,
    SubmitResult,
)
from serving.strategies.hedge import HedgeStrategy, build_hedge

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

# Each venue its own metadata: Backpack-like primary (tick 0.1, lot 0.00001), Hyperliquid-like hedge
# (tick 1, lot 0.00001, $10 minimum). Symbols differ per venue on purpose.
PRIMARY_INFO = MarketInfo(
    "BTC/USDC", "BTC_USDC", Decimal("0.1"), Decimal("0.00001"), Decimal(0), Decimal("-0.0002"), Decimal("0.0005")
)
HEDGE_INFO = MarketInfo(
    "BTC/USDC:USDC", "0", Decimal("1"), Decimal("0.00001"), Decimal(10), Decimal("0.00015"), Decimal("0.00045")
)


@dataclass
class Sent:
    order_id: str
    intent: OrderIntent
    at: datetime
    filled: Decimal = Decimal(0)
    state: OrderState = OrderState.OPEN
    fills: list[str] = field(default_factory=list)


class HedgeContext:
    def __init__(self, strategy_id: str = "hedge-1", state: dict[str, str] | None = None) -> None:
        self._id = strategy_id
        self.clock = T0
        self.books: dict[str, BookEvent] = {}
        self.positions: dict[str, Decimal] = {"primary": Decimal(0), "hedge": Decimal(0)}
        self.balances: dict[str, Decimal] = {"primary": Decimal(10_000), "hedge": Decimal(10_000)}
        self.infos = {"primary": PRIMARY_INFO, "hedge": HEDGE_INFO}
        self.saved: dict[str, str] = state if state is not None else {}
        self.sent: list[Sent] = []
        self.cancels: list[tuple[str, str]] = []
        self.alerts: list[tuple[str, str]] = []
        self.decisions: list[tuple[str, str]] = []
        self.refuse_next: list[str] = []
        self._ids = itertools.count(1)
        self._fill_ids = itertools.count(1)

    # ---- StrategyContext --------------------------------------------------------------------------
    @property
    def strategy_id(self) -> str:
        return self._id

    def now(self) -> datetime:
        return self.clock

    def instrument(self, symbol: str, venue: str = "") -> MarketInfo:
        info = self.infos[venue]
        assert info.symbol == symbol, f"{symbol} asked on {venue}, which lists {info.symbol}"
        return info

    def book(self, symbol: str, venue: str = "") -> BookEvent | None:
        return self.books.get(venue)

    def portfolio(self) -> PortfolioView:
        return PortfolioView(self._id, Decimal(10_000), Decimal(10_000), Decimal(0), Decimal(0))

    def position(self, symbol: str, venue: str = "") -> Decimal:
        return self.positions[venue]

    def open_orders(self, symbol: str | None = None, venue: str | None = None) -> list[OpenOrderView]:
        return [
            OpenOrderView(
                s.order_id, s.intent.venue, s.intent.symbol, s.intent.side, s.intent.price, s.intent.size - s.filled
            )
            for s in self.sent
            if s.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED, OrderState.CANCEL_REQUESTED)
        ]

    def submit(self, intent: OrderIntent) -> SubmitResult:
        if self.refuse_next:
            return SubmitResult(False, reason=self.refuse_next.pop(0))
        order_id = f"o{next(self._ids)}"
        self.sent.append(Sent(order_id, intent, self.clock))
        return SubmitResult(True, order_id, intent.size)

    def cancel(self, order_id: str, reason: str = "") -> None:
        self.cancels.append((order_id, reason))

    def entries_allowed(self, symbol: str | None = None) -> tuple[bool, str]:
        return True, ""

    def state(self) -> dict[str, str]:
        return dict(self.saved)

    def save_state(self, values: Mapping[str, str]) -> None:
        self.saved.update(values)

    def record(self, action: str, reason: str, symbol: str = "") -> None:
        self.decisions.append((action, reason))

    def alert(self, kind: str, message: str) -> None:
        self.alerts.append((kind, message))

    def available_balance(self, venue: str, asset: str) -> Decimal | None:
        return self.balances[venue]


class Harness:
    """The strategy plus its context, with the venue's side of each scenario as methods."""

    def __init__(self, cfg: HedgeConfig | Mapping[str, Any] | None = None, ctx: HedgeContext | None = None) -> None:
        self.cfg = (
            cfg
            if isinstance(cfg, HedgeConfig)
            else HedgeConfig.model_validate(
                {"primary_symbol": "BTC/USDC", "hedge_symbol": "BTC/USDC:USDC", **(cfg or {})}
            )
        )
        self.ctx = ctx or HedgeContext()
        self.strategy: HedgeStrategy = build_hedge(self.ctx.strategy_id, self.cfg)

    def start(self) -> Harness:
        self.strategy.on_start(self.ctx)  # type: ignore[arg-type]
        return self

    def set_books(
        self, primary: tuple[str, str] = ("60000.0", "60000.1"), hedge: tuple[str, str] = ("60000", "60001")
    ) -> None:
        for venue, (bid, ask) in (("primary", primary), ("hedge", hedge)):
            sym = self.ctx.infos[venue].symbol
            self.ctx.books[venue] = BookEvent(
                sym, Decimal(bid), Decimal(ask), Decimal(5), Decimal(5), self.ctx.clock, venue
            )
        self.strategy.on_book(self.ctx, self.ctx.books["primary"])  # type: ignore[arg-type]

    def advance(self, seconds: float) -> None:
        self.ctx.clock += timedelta(seconds=seconds)
        for venue, b in list(self.ctx.books.items()):
            self.ctx.books[venue] = BookEvent(b.symbol, b.bid, b.ask, b.bid_size, b.ask_size, self.ctx.clock, venue)
        self.strategy.on_timer(self.ctx, self.ctx.clock)  # type: ignore[arg-type]

    def order(self, order_id: str) -> Sent:
        return next(s for s in self.ctx.sent if s.order_id == order_id)

    def orders(self, tag: str) -> list[Sent]:
        return [s for s in self.ctx.sent if s.intent.tag == f"hedge-{tag}"]

    def fill(
        self, order_id: str, size: str | Decimal, price: str | Decimal | None = None, fill_id: str | None = None
    ) -> None:
        sent = self.order(order_id)
        qty = Decimal(size)
        px = Decimal(price) if price is not None else sent.intent.price
        assert px is not None
        fid = fill_id or f"f{next(self.ctx._fill_ids)}"
        if fid not in sent.fills:  # the venue's position moves once per fill, however often it is reported
            sent.fills.append(fid)
            sent.filled += qty
            if sent.filled >= sent.intent.size:
                sent.state = OrderState.FILLED
            signed = qty if sent.intent.side is Side.BUY else -qty
            venue = "primary" if sent.intent.venue == self.cfg.primary_venue else "hedge"
            self.ctx.positions[venue] += signed
        rate = Decimal("-0.0002") if sent.intent.post_only else Decimal("0.00045")
        liquidity = Liquidity.MAKER if sent.intent.post_only else Liquidity.TAKER
        fill = Fill(fid, qty, px, qty * px * rate, liquidity, self.ctx.clock)
        event = FillEvent(
            order_id, f"c-{order_id}", sent.intent.venue, sent.intent.symbol, sent.intent.side, fill, sent.intent.tag
        )
        self.strategy.on_fill(self.ctx, event)  # type: ignore[arg-type]

    def update(self, order_id: str, state: OrderState, reason: str = "") -> None:
        sent = self.order(order_id)
        sent.state = state
        event = OrderUpdate(
            order_id,
            f"c-{order_id}",
            sent.intent.venue,
            sent.intent.symbol,
            sent.intent.side,
            state,
            sent.filled,
            sent.intent.size - sent.filled,
            self.ctx.clock,
            reason,
            sent.intent.tag,
        )
        self.strategy.on_order_update(self.ctx, event)  # type: ignore[arg-type]

    def fill_ioc(self, order_id: str, size: str | Decimal | None = None) -> None:
        """The hedge venue takes an IOC: fills `size` (all by default) at its limit, then ends it."""
        sent = self.order(order_id)
        qty = Decimal(size) if size is not None else sent.intent.size
        if qty > 0:
            self.fill(order_id, qty)
        self.update(order_id, OrderState.FILLED if qty == sent.intent.size else OrderState.EXPIRED)

    def restart(self) -> Harness:
        """kill -9: a new process on the same persisted state and the same venue positions."""
        ctx = HedgeContext(self.ctx.strategy_id, state=dict(self.ctx.saved))
        ctx.clock, ctx.books, ctx.positions, ctx.balances = (
            self.ctx.clock,
            dict(self.ctx.books),
            dict(self.ctx.positions),
            dict(self.ctx.balances),
        )
        return Harness(self.cfg, ctx).start()

    @property
    def net(self) -> Decimal:
        return self.ctx.positions["primary"] + self.ctx.positions["hedge"]
