"""Order domain and the working-order policy (SPEC 11). No IO.

The order lifecycle (`OrderState`, `ALLOWED_TRANSITIONS`, `Order`, fills, venue events) lives in
`pipelines.trading.order_lifecycle` and the client order ids (`ClientOrderIdFactory`, UUIDv7) in
`pipelines.trading.order_ids`; both are re-exported here, so callers import every order name from
this module.

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

Units: prices/sizes/fees Decimal (fees in quote currency, negative = rebate); times aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

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
from pipelines.trading.order_ids import (
    ClientOrderIdFactory,
    client_order_id_time,
    client_order_id_uuid,
    is_our_order,
)
from pipelines.trading.order_lifecycle import (
    ALLOWED_TRANSITIONS,
    LIVE_STATES,
    TERMINAL_STATES,
    Accepted,
    Cancelled,
    CancelRefused,
    Expired,
    Fill,
    Filled,
    FillError,
    IllegalTransitionError,
    Liquidity,
    Order,
    OrderKind,
    OrderState,
    Rejected,
    Transition,
    VenueEvent,
    apply_event,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "LIVE_STATES",
    "TERMINAL_STATES",
    "Accepted",
    "BookTop",
    "CancelOrder",
    "CancelRefused",
    "Cancelled",
    "ClientOrderIdFactory",
    "Expired",
    "Fill",
    "FillError",
    "Filled",
    "IllegalTransitionError",
    "Liquidity",
    "Order",
    "OrderAction",
    "OrderKind",
    "OrderManager",
    "OrderState",
    "PlaceOrder",
    "Rejected",
    "Transition",
    "VenueEvent",
    "WorkStatus",
    "WorkingOrder",
    "apply_event",
    "client_order_id_time",
    "client_order_id_uuid",
    "count_zombies",
    "is_our_order",
    "is_zombie",
]


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
