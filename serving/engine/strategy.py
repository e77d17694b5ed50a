"""The one strategy interface: what a strategy sees and what it may ask for (NautilusTrader's split).

Every strategy (directional, Avellaneda-Stoikov market making, two-venue hedge, window markets) is an
object implementing `Strategy`. The same object runs in the tick-level simulator, on paper and live:
only the brokers behind the engine change. A strategy never talks to a broker, the store or the
portfolio directly; it reads through its `StrategyContext` and asks for orders with `OrderIntent`s,
which the engine routes through the risk component (it can reduce or refuse, never enlarge) and then
to the execution component of the intent's venue.

Contract:
- Callbacks run on the engine's single event thread, in event order; they must not block (no IO, no
  sleeps). Time is `ctx.now()`: event time in a replay or simulation, the wall clock live (aware UTC).
- Prices and sizes are `Decimal` (base units for sizes, quote currency for prices); probabilities and
  features are floats.
- `ctx.submit` returns at once with a `SubmitResult`: `accepted` with the working order's id, or
  refused with the risk component's reason (kill switch, phase cap, min notional, ...). Venue answers
  (ack, fills, rejects, cancels) arrive later as `on_order_update` / `on_fill`.
- Exits (`OrderIntent.is_exit`) are never blocked by the risk component; they may still be rounded.
- Positions, orders, fills and PnL are attributed to `strategy_id`; each strategy has its own capital
  allocation, counters and kill-switch scope, and the account-wide limits apply on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.orders import Fill, OrderState
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.engine.persistence.window_pnl import WindowSettlement


class TimeInForce(StrEnum):
    GTC = "gtc"  # rests until filled, cancelled or the execution's time to live
    IOC = "ioc"  # fills what it can at once, the rest is cancelled by the venue


class ExecutionStyle(StrEnum):
    """How the execution component works an intent.

    WORKING: SPEC 11's working order (post-only at the touch, re-quoted after partial fills, taker
    fallback within the slippage cap after 10 s, TTL 60 s); `price` is optional (None = the touch).
    LIMIT: exactly one order at `price` with `post_only` / `time_in_force` as given (quotes, hedges);
    the strategy replaces it itself.
    """

    WORKING = "working"
    LIMIT = "limit"


@dataclass(frozen=True)
class OrderIntent:
    """What a strategy wants sent. `venue` names one of the engine's brokers ("" = the default one)."""

    symbol: str
    side: Side
    size: Decimal
    price: Decimal | None = None
    style: ExecutionStyle = ExecutionStyle.WORKING
    post_only: bool = True
    time_in_force: TimeInForce = TimeInForce.GTC
    is_exit: bool = False
    venue: str = ""
    tag: str = ""  # free text kept with the order (e.g. "quote-bid", "hedge", "unwind")

    def __post_init__(self) -> None:
        if not isinstance(self.size, Decimal) or self.size <= 0:
            raise ValueError(f"intent {self.symbol} {self.side}: size must be a positive Decimal, got {self.size!r}")
        if self.price is not None and (not isinstance(self.price, Decimal) or self.price <= 0):
            raise ValueError(f"intent {self.symbol} {self.side}: price must be a positive Decimal, got {self.price!r}")
        if self.style is ExecutionStyle.LIMIT and self.price is None:
            raise ValueError(f"intent {self.symbol} {self.side}: a LIMIT intent needs a price")
        if self.post_only and self.time_in_force is TimeInForce.IOC:
            raise ValueError(f"intent {self.symbol} {self.side}: post-only and IOC exclude each other")


@dataclass(frozen=True)
class SubmitResult:
    """The risk component's answer. `size` is what was sent (it may have been reduced)."""

    accepted: bool
    order_id: str | None = None
    size: Decimal | None = None
    reason: str = ""


@dataclass(frozen=True)
class OrderUpdate:
    """A state change of one of this strategy's orders (after the venue answered)."""

    order_id: str  # the working order / limit order id returned by `submit`
    client_order_id: str  # the venue-level child order
    venue: str
    symbol: str
    side: Side
    state: OrderState
    filled: Decimal
    remaining: Decimal
    ts: datetime
    reason: str = ""
    tag: str = ""


@dataclass(frozen=True)
class RoundTrip:
    """A position of this strategy that went back to flat (entry and exit fills, fees included)."""

    venue: str
    symbol: str
    side: Side  # the entry side (BUY = long)
    size: Decimal
    net_pnl: Decimal  # quote currency, fees included
    net_return: float  # net_pnl / entry notional
    opened_at: datetime
    closed_at: datetime
    reason: str = ""


@dataclass(frozen=True)
class FillEvent:
    """One execution of one of this strategy's orders (de-duplicated by `fill.fill_id`).

    `round_trip` is set when this fill closed the strategy's position in the symbol (additive field).
    """

    order_id: str
    client_order_id: str
    venue: str
    symbol: str
    side: Side
    fill: Fill
    tag: str = ""
    round_trip: RoundTrip | None = None


@dataclass(frozen=True)
class RiskLimits:
    """What the risk component allows a new entry right now (additive: `StrategyContext.risk_limits`).

    A strategy sizes with these (SPEC 9: sizes x the active reductions, the deployment phase's caps);
    the risk component enforces the caps again on every intent (it only reduces or refuses).
    """

    allowed: bool
    reason: str
    size_multiplier: float = 1.0
    max_trade_notional: Decimal | None = None
    bankroll_cap: Decimal | None = None


@dataclass(frozen=True)
class PositionView:
    venue: str
    symbol: str
    size: Decimal  # signed, base units
    average_price: Decimal | None
    realized_pnl: Decimal
    unrealized_pnl: Decimal | None
    opened_at: datetime | None = None  # additive: when the position opened (time stops)
    mark: Decimal | None = None  # additive: its exit price now (bid of a long, ask of a short, or last trade)


@dataclass(frozen=True)
class OpenOrderView:
    order_id: str
    venue: str
    symbol: str
    side: Side
    price: Decimal | None
    remaining: Decimal
    tag: str = ""


@dataclass(frozen=True)
class PortfolioView:
    """This strategy's slice of the portfolio: allocation, cash and positions in the quote currency."""

    strategy_id: str
    allocation: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    positions: Mapping[tuple[str, str], PositionView] = field(default_factory=dict)  # (venue, symbol)
    available: Decimal | None = None  # quote currency it may spend now (additive; None = unknown)


class StrategyContext(Protocol):
    """What the engine gives a strategy. Reads are snapshots; writes go through risk and execution."""

    @property
    def strategy_id(self) -> str: ...

    def now(self) -> datetime: ...

    def instrument(self, symbol: str, venue: str = "") -> MarketInfo: ...

    def book(self, symbol: str, venue: str = "") -> BookEvent | None: ...

    def portfolio(self) -> PortfolioView: ...

    def position(self, symbol: str, venue: str = "") -> Decimal: ...

    def open_orders(self, symbol: str | None = None, venue: str | None = None) -> list[OpenOrderView]: ...

    def submit(self, intent: OrderIntent) -> SubmitResult: ...

    def cancel(self, order_id: str, reason: str = "") -> None: ...

    def entries_allowed(self, symbol: str | None = None) -> tuple[bool, str]:
        """Whether the risk component would accept a new (non-exit) order now, and why not."""
        ...

    def risk_limits(self, symbol: str | None = None) -> RiskLimits:
        """`entries_allowed` with the size multiplier and caps a strategy sizes with (additive)."""
        ...

    def state(self) -> dict[str, str]:
        """This strategy's persisted key/value state (survives restarts and `kill -9`)."""
        ...

    def save_state(self, values: Mapping[str, str]) -> None: ...

    def record(self, action: str, reason: str, symbol: str = "") -> None:
        """A decision line for the status endpoint and the log."""
        ...

    def alert(self, kind: str, message: str) -> None: ...

    def window_settled(self, result: WindowSettlement) -> None:
        """A window-market strategy settled a window: its PnL row in the store and in Prometheus."""
        ...


@runtime_checkable
class Strategy(Protocol):
    """A trading strategy. `strategy_id` is unique within an engine and stable across restarts."""

    strategy_id: str

    def on_start(self, ctx: StrategyContext) -> None: ...

    def on_book(self, ctx: StrategyContext, event: BookEvent) -> None: ...

    def on_trade(self, ctx: StrategyContext, event: TradeEvent) -> None: ...

    def on_signal(self, ctx: StrategyContext, event: SignalEvent) -> None: ...

    def on_order_update(self, ctx: StrategyContext, update: OrderUpdate) -> None: ...

    def on_fill(self, ctx: StrategyContext, fill: FillEvent) -> None: ...

    def on_timer(self, ctx: StrategyContext, now: datetime) -> None: ...

    def on_stop(self, ctx: StrategyContext) -> None: ...
