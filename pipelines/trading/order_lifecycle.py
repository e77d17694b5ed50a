"""Order lifecycle: states, the `Order` state machine, fills and venue events (SPEC 11). No IO.

Lifecycle (`OrderState`), with every allowed transition listed in `ALLOWED_TRANSITIONS`; anything else
raises `IllegalTransitionError`, because a state we did not expect means our picture of the venue is
wrong, and trading on a wrong picture is how positions end up unhedged.

    new --ack--> open --fill--> partially_filled --fill--> filled
     |            |                  |
     |            +--cancel req--> cancel_requested --confirm--> cancelled
     +--> rejected / cancelled / expired (IOC)            (a fill may still land: -> filled)

Fills accumulate with `Decimal` (size, notional, fees) and are de-duplicated by venue fill id, because
the same fill arrives by WebSocket and again by REST reconciliation. A fill that would overfill the order
raises. A late fill on an already cancelled/expired order is recorded (it happened at the venue; dropping
it would leave the position wrong) and the state is kept.

Units: prices/sizes/fees Decimal (fees in quote currency, negative = rebate); times aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pipelines.errors import OperatorError
from pipelines.trading.config import require_utc
from pipelines.trading.instruments import Side


class OrderState(StrEnum):
    NEW = "new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


TERMINAL_STATES = frozenset(
    {OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.EXPIRED}
)
LIVE_STATES = frozenset(
    {OrderState.NEW, OrderState.OPEN, OrderState.PARTIALLY_FILLED, OrderState.CANCEL_REQUESTED}
)

ALLOWED_TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    # NEW -> (PARTIALLY_)FILLED: an IOC or a fill racing the ack; NEW -> CANCEL_REQUESTED: cancel
    # before ack; NEW -> CANCELLED/EXPIRED: an IOC that found nothing.
    OrderState.NEW: frozenset(
        {
            OrderState.OPEN,
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCEL_REQUESTED,
            OrderState.CANCELLED,
            OrderState.REJECTED,
            OrderState.EXPIRED,
        }
    ),
    OrderState.OPEN: frozenset(
        {
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCEL_REQUESTED,
            OrderState.CANCELLED,
            OrderState.EXPIRED,
        }
    ),
    OrderState.PARTIALLY_FILLED: frozenset(
        {OrderState.FILLED, OrderState.CANCEL_REQUESTED, OrderState.CANCELLED, OrderState.EXPIRED}
    ),
    # Back to OPEN/PARTIALLY_FILLED when the venue refuses the cancel and the order is still there.
    OrderState.CANCEL_REQUESTED: frozenset(
        {
            OrderState.OPEN,
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCELLED,
            OrderState.EXPIRED,
        }
    ),
    OrderState.FILLED: frozenset(),
    OrderState.CANCELLED: frozenset(),
    OrderState.REJECTED: frozenset(),
    OrderState.EXPIRED: frozenset(),
}


class IllegalTransitionError(OperatorError):
    """An order was asked to move between states the lifecycle does not allow."""


class FillError(OperatorError):
    """A fill that cannot be applied (overfill, fill on a rejected order, wrong order)."""


class OrderKind(StrEnum):
    POST_ONLY = "post_only"  # limit, maker only, rests until filled or cancelled
    IOC = "ioc"  # limit, immediate-or-cancel: the taker leg


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


@dataclass(frozen=True)
class Fill:
    """One execution. `fee` is in quote currency (negative = rebate)."""

    fill_id: str
    size: Decimal
    price: Decimal
    fee: Decimal
    liquidity: Liquidity
    ts: datetime


@dataclass(frozen=True)
class Transition:
    at: datetime
    source: OrderState
    target: OrderState
    note: str


@dataclass(eq=False)
class Order:
    """One order at the venue (mutable: its state follows the venue's events)."""

    client_order_id: str
    symbol: str
    side: Side
    kind: OrderKind
    price: Decimal
    size: Decimal
    created_at: datetime
    state: OrderState = OrderState.NEW
    venue_order_id: str | None = None
    filled: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    fills: list[Fill] = field(default_factory=list)
    cancel_requested_at: datetime | None = None
    closed_at: datetime | None = None
    reject_reason: str | None = None
    late_fill: bool = False
    history: list[Transition] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size <= 0 or self.price <= 0:
            raise ValueError(f"order {self.client_order_id}: price and size must be positive")
        self.created_at = require_utc(self.created_at, "created_at")

    @property
    def remaining(self) -> Decimal:
        return self.size - self.filled

    @property
    def average_price(self) -> Decimal | None:
        """Size-weighted average fill price, None before any fill."""
        return self.filled_notional / self.filled if self.filled > 0 else None

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def can_transition(self, target: OrderState) -> bool:
        return target in ALLOWED_TRANSITIONS[self.state]

    def transition(self, target: OrderState, now: datetime, note: str = "") -> None:
        """Move to `target` or raise `IllegalTransitionError` naming both states and what is allowed."""
        now = require_utc(now)
        if not self.can_transition(target):
            allowed = ", ".join(sorted(s.value for s in ALLOWED_TRANSITIONS[self.state])) or "none (terminal)"
            raise IllegalTransitionError(
                f"order {self.client_order_id}: {self.state.value} -> {target.value} is not allowed "
                f"(allowed from {self.state.value}: {allowed})"
            )
        self.history.append(Transition(now, self.state, target, note))
        self.state = target
        if target is OrderState.CANCEL_REQUESTED:
            self.cancel_requested_at = now
        if target in TERMINAL_STATES:
            self.closed_at = now

    def acknowledge(self, now: datetime, venue_order_id: str | None = None) -> None:
        """The venue accepted the order. A fill or cancel request that overtook the ack keeps its state."""
        if venue_order_id is not None:
            self.venue_order_id = venue_order_id
        if self.state is OrderState.NEW:
            self.transition(OrderState.OPEN, now, "ack")
        elif self.state is OrderState.REJECTED:
            raise IllegalTransitionError(f"order {self.client_order_id}: ack after rejection")

    def apply_fill(self, fill: Fill) -> bool:
        """Accumulate a fill; False when this fill id was already applied (duplicate report)."""
        if any(f.fill_id == fill.fill_id for f in self.fills):
            return False
        if fill.size <= 0 or fill.price <= 0:
            raise FillError(f"order {self.client_order_id}: fill {fill.fill_id} has non-positive size/price")
        if self.state in (OrderState.REJECTED, OrderState.FILLED):
            raise FillError(
                f"order {self.client_order_id}: fill {fill.fill_id} on a {self.state.value} order"
            )
        if self.filled + fill.size > self.size:
            raise FillError(
                f"order {self.client_order_id}: fill {fill.fill_id} of {fill.size} overfills "
                f"({self.filled} of {self.size} already filled)"
            )
        self.fills.append(fill)
        self.filled += fill.size
        self.filled_notional += fill.size * fill.price
        self.fees += fill.fee
        if self.state in (OrderState.CANCELLED, OrderState.EXPIRED):
            self.late_fill = True  # it happened at the venue; keep the terminal state
            return True
        if self.filled == self.size:
            self.transition(OrderState.FILLED, fill.ts, f"fill {fill.fill_id}")
        elif self.state in (OrderState.NEW, OrderState.OPEN):
            self.transition(OrderState.PARTIALLY_FILLED, fill.ts, f"fill {fill.fill_id}")
        return True

    def request_cancel(self, now: datetime) -> None:
        self.transition(OrderState.CANCEL_REQUESTED, now, "cancel requested")

    def cancel_refused(self, now: datetime, reason: str = "") -> None:
        """The venue refused our cancel and the order is still working."""
        if self.state is OrderState.CANCEL_REQUESTED:
            target = OrderState.PARTIALLY_FILLED if self.filled > 0 else OrderState.OPEN
            self.transition(target, now, f"cancel refused: {reason}")

    def confirm_cancelled(self, now: datetime, reason: str = "") -> None:
        self.transition(OrderState.CANCELLED, now, reason or "cancelled")

    def expire(self, now: datetime, reason: str = "") -> None:
        self.transition(OrderState.EXPIRED, now, reason or "expired")

    def reject(self, now: datetime, reason: str) -> None:
        self.reject_reason = reason
        self.transition(OrderState.REJECTED, now, reason)


# ---- venue events ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Accepted:
    client_order_id: str
    venue_order_id: str
    ts: datetime


@dataclass(frozen=True)
class Filled:
    client_order_id: str
    fill: Fill


@dataclass(frozen=True)
class Cancelled:
    client_order_id: str
    ts: datetime
    reason: str = ""


@dataclass(frozen=True)
class CancelRefused:
    client_order_id: str
    ts: datetime
    reason: str = ""


@dataclass(frozen=True)
class Rejected:
    client_order_id: str
    ts: datetime
    reason: str


@dataclass(frozen=True)
class Expired:
    client_order_id: str
    ts: datetime
    reason: str = ""


VenueEvent = Accepted | Filled | Cancelled | CancelRefused | Rejected | Expired


def apply_event(order: Order, event: VenueEvent) -> None:
    """Apply one venue event to `order` (the event must be for this order)."""
    if event.client_order_id != order.client_order_id:
        raise FillError(f"event for {event.client_order_id} applied to {order.client_order_id}")
    match event:
        case Accepted():
            order.acknowledge(event.ts, event.venue_order_id)
        case Filled():
            order.apply_fill(event.fill)
        case Cancelled():
            order.confirm_cancelled(event.ts, event.reason)
        case CancelRefused():
            order.cancel_refused(event.ts, event.reason)
        case Rejected():
            order.reject(event.ts, event.reason)
        case Expired():
            order.expire(event.ts, event.reason)
