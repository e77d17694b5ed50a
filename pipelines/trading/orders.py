"""Order domain, lifecycle state machine and the working-order policy (SPEC 11). No IO.

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

Working orders: `OrderManager` turns an intent (buy/sell `size` of a symbol) into child orders:
- a post-only maker order at the best price (buy at the bid, sell at the ask);
- partial fill: the remainder keeps being quoted at the same price (re-placed if the venue drops it);
- after `taker_fallback_after_seconds` (10 s) with less than 80% filled, the remainder may go as an IOC
  taker order whose limit is at most one tick beyond the touch AND within `slippage_cap` (0.5%) of the
  working order's quote price, whichever is tighter (if the touch is already beyond that, no taker);
- time to live 60 s from the intent's start, then cancel;
- 500 ms between a child's confirmed end (cancel, expiry, reject) and the next placement.
`OrderManager.next_actions(work, book, now)` returns the actions to send (`PlaceOrder`, `CancelOrder`)
and records them in the working order (new child in NEW, cancel -> CANCEL_REQUESTED), so calling it
again at the same instant returns nothing new: the policy is idempotent.

Client order ids: `ClientOrderIdFactory` gives `<prefix><32 hex>` where the hex is a UUIDv7 (RFC 9562):
48 bits of Unix milliseconds then 74 random bits from the OS CSPRNG. Unique across processes and
restarts without any shared counter or persisted state: two ids can only collide if they share the
millisecond *and* 74 random bits (probability ~ n^2 / 2^75 for n ids in one millisecond), which holds
even when a restarted process's clock runs behind the previous one. Within a process ids are strictly
increasing (a clock step back reuses the last millisecond and increments the random part). At most 36
characters (Binance's limit), only [A-Za-z0-9]; the UUID is recoverable for venues that want 128-bit ids.

Units: prices/sizes/fees Decimal (fees in quote currency, negative = rebate); times aware UTC.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pipelines.errors import OperatorError
from pipelines.trading.config import OrderConfig, require_utc
from pipelines.trading.instruments import (
    MarketInfo,
    Rounding,
    Side,
    price_for_side,
    rejection_reason,
    round_price,
    round_size,
    ticks_away,
    to_decimal,
)


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


# ---- client order ids --------------------------------------------------------------------------
_PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,4}$")
_RAND_BITS = 74
_RAND_MASK = (1 << _RAND_BITS) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ClientOrderIdFactory:
    """Time-ordered client order ids, unique across processes and restarts (see module docstring).

    `clock` returns aware UTC; `random_bytes(n)` returns n random bytes (default `os.urandom`; inject
    a deterministic source only in tests).
    """

    def __init__(
        self,
        clock: Callable[[], datetime],
        prefix: str = "at",
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"client order id prefix must be 1-4 letters/digits, got {prefix!r}")
        self.prefix = prefix
        self._clock = clock
        self._random_bytes = random_bytes
        self._last_ms = -1
        self._last_rand = 0

    def next_id(self) -> str:
        ms = (require_utc(self._clock(), "clock()") - _EPOCH) // timedelta(milliseconds=1)
        rand = int.from_bytes(self._random_bytes(10), "big") & _RAND_MASK
        if ms <= self._last_ms:
            # Same millisecond or the clock stepped back: stay strictly increasing.
            ms, rand = self._last_ms, self._last_rand + 1
            if rand > _RAND_MASK:
                ms, rand = ms + 1, 0
        self._last_ms, self._last_rand = ms, rand
        value = (
            (ms & ((1 << 48) - 1)) << 80
            | 0x7 << 76
            | (rand >> 62) << 64
            | 0b10 << 62
            | (rand & ((1 << 62) - 1))
        )
        return f"{self.prefix}{value:032x}"


def client_order_id_uuid(client_order_id: str) -> uuid.UUID:
    """The UUIDv7 inside one of our ids (for venues that take a 128-bit client id)."""
    return uuid.UUID(hex=client_order_id[-32:])


def client_order_id_time(client_order_id: str) -> datetime:
    """When one of our ids was made (millisecond precision, UTC)."""
    ms = client_order_id_uuid(client_order_id).int >> 80
    return _EPOCH + timedelta(milliseconds=ms)


def is_our_order(client_order_id: str, prefix: str) -> bool:
    """True when the id has our prefix and a well-formed UUIDv7 (for the clean-start sweep)."""
    if not client_order_id.startswith(prefix) or len(client_order_id) != len(prefix) + 32:
        return False
    try:
        return client_order_id_uuid(client_order_id).version == 7
    except ValueError:
        return False


# ---- market state and working orders -----------------------------------------------------------
@dataclass(frozen=True)
class BookTop:
    """Best bid/ask with sizes, as of `ts` (aware UTC)."""

    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    ts: datetime

    def is_sane(self) -> bool:
        return Decimal(0) < self.bid < self.ask


class WorkStatus(StrEnum):
    WORKING = "working"
    COMPLETED = "completed"
    EXPIRED = "expired"
    FAILED = "failed"


@dataclass(eq=False)
class WorkingOrder:
    """An intent to trade `target_size`, worked through child orders by `OrderManager`."""

    work_id: str
    market: MarketInfo
    side: Side
    target_size: Decimal
    quote_price: Decimal
    created_at: datetime
    allow_taker: bool = True
    children: list[Order] = field(default_factory=list)
    status: WorkStatus = WorkStatus.WORKING
    finish_reason: str | None = None
    taker_pending: bool = False
    taker_used: bool = False
    hold_reason: str | None = None

    @property
    def filled(self) -> Decimal:
        return sum((c.filled for c in self.children), Decimal(0))

    @property
    def remaining(self) -> Decimal:
        return self.target_size - self.filled

    @property
    def fees(self) -> Decimal:
        return sum((c.fees for c in self.children), Decimal(0))

    @property
    def average_price(self) -> Decimal | None:
        filled = self.filled
        if filled == 0:
            return None
        return sum((c.filled_notional for c in self.children), Decimal(0)) / filled

    @property
    def rejects(self) -> int:
        return sum(1 for c in self.children if c.state is OrderState.REJECTED)

    def live_child(self) -> Order | None:
        live = [c for c in self.children if c.is_live]
        if len(live) > 1:
            raise IllegalTransitionError(f"working order {self.work_id} has {len(live)} live children")
        return live[0] if live else None

    def child(self, client_order_id: str) -> Order | None:
        return next((c for c in self.children if c.client_order_id == client_order_id), None)

    def apply(self, event: VenueEvent) -> bool:
        """Route a venue event to the child it names; False when it is not one of ours."""
        order = self.child(event.client_order_id)
        if order is None:
            return False
        apply_event(order, event)
        return True

    def finish(self, status: WorkStatus, reason: str) -> None:
        self.status = status
        self.finish_reason = reason


@dataclass(frozen=True)
class PlaceOrder:
    """Send `order` (a new child in state NEW): post-only limit or IOC limit per `order.kind`."""

    order: Order
    reason: str


@dataclass(frozen=True)
class CancelOrder:
    client_order_id: str
    reason: str


OrderAction = PlaceOrder | CancelOrder


class OrderManager:
    """The working-order policy of SPEC 11 (see module docstring). Pure: no IO, time passed in."""

    def __init__(self, cfg: OrderConfig, ids: ClientOrderIdFactory) -> None:
        self.cfg = cfg
        self.ids = ids

    def start(
        self,
        market: MarketInfo,
        side: Side,
        size: Decimal,
        book: BookTop,
        now: datetime,
        *,
        allow_taker: bool = True,
        price: Decimal | None = None,
    ) -> tuple[WorkingOrder, list[OrderAction]]:
        """Open a working order: post-only at the best price (or `price`), rounded for the side."""
        now = require_utc(now)
        raw = price if price is not None else (book.bid if side is Side.BUY else book.ask)
        quote = price_for_side(market, raw, side)
        work = WorkingOrder(
            work_id=self.ids.next_id(),
            market=market,
            side=side,
            target_size=round_size(market, size),
            quote_price=quote,
            created_at=now,
            allow_taker=allow_taker,
        )
        problem = self._book_problem(book, now)
        if problem is not None:
            work.finish(WorkStatus.FAILED, f"book not usable: {problem}")
            return work, []
        return work, self._place(work, OrderKind.POST_ONLY, self._maker_price(work, book), now, "open")

    def next_actions(self, work: WorkingOrder, book: BookTop | None, now: datetime) -> list[OrderAction]:
        """What to send now for `work`, given the latest book; records the actions in `work`."""
        now = require_utc(now)
        if work.status is not WorkStatus.WORKING:
            return []
        cfg = self.cfg
        elapsed = (now - work.created_at).total_seconds()
        live = work.live_child()
        if live is not None:
            return self._while_live(work, live, book, now, elapsed)

        if round_size(work.market, work.remaining) <= 0:
            work.finish(WorkStatus.COMPLETED, f"filled {work.filled} of {work.target_size}")
            return []
        if elapsed >= cfg.ttl_seconds:
            work.finish(
                WorkStatus.EXPIRED,
                f"time to live {cfg.ttl_seconds:.0f}s reached, {work.filled} of {work.target_size} filled",
            )
            return []
        if work.rejects >= cfg.max_rejects:
            last_reason = work.children[-1].reject_reason if work.children else None
            work.finish(WorkStatus.FAILED, f"{work.rejects} rejections (last: {last_reason})")
            return []
        last = work.children[-1] if work.children else None
        if last is not None and last.closed_at is not None:
            ready = last.closed_at + timedelta(seconds=cfg.cancel_replace_delay_seconds)
            if now < ready:
                work.hold_reason = f"cancel delay until {ready.isoformat()}"
                return []
        problem = self._book_problem(book, now)
        if problem is not None or book is None:
            work.hold_reason = problem
            return []
        if work.taker_pending:
            work.taker_pending = False
            taker_price = self._taker_price(work, book)
            if taker_price is not None:
                work.taker_used = True
                return self._place(work, OrderKind.IOC, taker_price, now, "taker fallback for the remainder")
        return self._place(
            work,
            OrderKind.POST_ONLY,
            self._maker_price(work, book),
            now,
            "re-quote remainder at the same price",
        )

    def _while_live(
        self, work: WorkingOrder, live: Order, book: BookTop | None, now: datetime, elapsed: float
    ) -> list[OrderAction]:
        """A child is on the venue: cancel it at the time to live, or to make room for the taker fallback;
        otherwise leave it working. `elapsed` is seconds since `work` was created."""
        cfg = self.cfg
        if live.state is OrderState.CANCEL_REQUESTED:
            return []  # wait for the venue to confirm before anything else
        if elapsed >= cfg.ttl_seconds:
            return [self._cancel(live, now, f"time to live {cfg.ttl_seconds:.0f}s reached")]
        if self._taker_due(work, live, elapsed) and book is not None and self._book_problem(book, now) is None:
            price = self._taker_price(work, book)
            if price is not None:
                work.taker_pending = True
                ratio = work.filled / work.target_size
                return [
                    self._cancel(
                        live,
                        now,
                        f"taker fallback: {ratio:.0%} filled after {elapsed:.1f}s "
                        f"< {cfg.taker_fallback_max_filled_ratio:.0%}",
                    )
                ]
        return []

    # ---- internals ----------------------------------------------------------------------------
    def _place(
        self, work: WorkingOrder, kind: OrderKind, price: Decimal | None, now: datetime, why: str
    ) -> list[OrderAction]:
        size = round_size(work.market, work.remaining)
        if price is None:
            work.hold_reason = "no valid price"
            return []
        reason = rejection_reason(work.market, price, size)
        if reason is not None:
            status = WorkStatus.COMPLETED if work.filled > 0 else WorkStatus.FAILED
            work.finish(status, f"remainder {size} cannot be sent: {reason}")
            return []
        order = Order(
            client_order_id=self.ids.next_id(),
            symbol=work.market.symbol,
            side=work.side,
            kind=kind,
            price=price,
            size=size,
            created_at=now,
        )
        work.children.append(order)
        work.hold_reason = None
        return [PlaceOrder(order, f"{why}: {kind.value} {work.side.value} {size} @ {price}")]

    def _cancel(self, order: Order, now: datetime, why: str) -> CancelOrder:
        order.request_cancel(now)
        return CancelOrder(order.client_order_id, why)

    def _taker_due(self, work: WorkingOrder, live: Order, elapsed: float) -> bool:
        cfg = self.cfg
        return (
            cfg.taker_fallback_enabled
            and work.allow_taker
            and not work.taker_used
            and live.kind is OrderKind.POST_ONLY
            and elapsed >= cfg.taker_fallback_after_seconds
            and work.filled < work.target_size * to_decimal(cfg.taker_fallback_max_filled_ratio)
        )

    def _book_problem(self, book: BookTop | None, now: datetime) -> str | None:
        """Why `book` must not be used to price an order now (SPEC 2: crossed or stale), or None."""
        if book is None:
            return "no book"
        if not book.is_sane():
            return f"crossed or empty book (bid {book.bid}, ask {book.ask})"
        age = (now - require_utc(book.ts, "book.ts")).total_seconds()
        if age > self.cfg.max_book_age_seconds:
            return f"book {age:.1f}s old > {self.cfg.max_book_age_seconds}s"
        return None

    def _maker_price(self, work: WorkingOrder, book: BookTop) -> Decimal | None:
        """The quote price, moved passive of the touch only if it would now cross (never worse for us)."""
        market, price = work.market, work.quote_price
        if work.side is Side.BUY and price >= book.ask:
            price = ticks_away(market, price_for_side(market, book.ask, Side.SELL), -1)
        elif work.side is Side.SELL and price <= book.bid:
            price = ticks_away(market, price_for_side(market, book.bid, Side.BUY), 1)
        return price if price > 0 else None

    def _taker_price(self, work: WorkingOrder, book: BookTop) -> Decimal | None:
        """IOC limit: at most N ticks beyond the touch and within the slippage cap; None if unreachable."""
        market, cfg = work.market, self.cfg
        cap = to_decimal(cfg.slippage_cap)
        if work.side is Side.BUY:
            touch = price_for_side(market, book.ask, Side.SELL)
            beyond = ticks_away(market, touch, cfg.taker_max_ticks_beyond_touch)
            ceiling = round_price(market, work.quote_price * (1 + cap), Rounding.DOWN)
            price = min(beyond, ceiling)
            return price if price >= touch else None
        touch = price_for_side(market, book.bid, Side.BUY)
        beyond = ticks_away(market, touch, -cfg.taker_max_ticks_beyond_touch)
        floor = round_price(market, work.quote_price * (1 - cap), Rounding.UP)
        price = max(beyond, floor)
        return price if 0 < price <= touch else None


def is_zombie(order: Order, now: datetime, cfg: OrderConfig) -> bool:
    """A stale order: unacknowledged too long, cancel unconfirmed too long, or live well past its TTL."""
    now = require_utc(now)
    age = (now - order.created_at).total_seconds()
    if order.state is OrderState.NEW:
        return age > cfg.ack_timeout_seconds
    if order.state is OrderState.CANCEL_REQUESTED and order.cancel_requested_at is not None:
        return (now - order.cancel_requested_at).total_seconds() > cfg.cancel_confirm_timeout_seconds
    if order.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED):
        return age > cfg.ttl_seconds + cfg.zombie_grace_seconds
    return False


def count_zombies(orders: Iterable[Order], now: datetime, cfg: OrderConfig) -> int:
    """How many of `orders` are zombies (the kill switch cancels all above `max_zombie_orders`)."""
    return sum(1 for order in orders if is_zombie(order, now, cfg))
