"""Paper matching engine: realistic fills without a venue (SPEC 11). Pure: feed it time and market data.

Rules:
- Latency: an order submitted at t becomes live at t + `latency_ms`; a cancel sent at t takes effect at
  t + `latency_ms`, so a fill can still land in between, as on a real venue.
- Every order is checked like a venue would (tick, lot, minimum size and notional) and rejected if bad.
- Post-only: rejected if it would cross the book when it becomes live; otherwise it rests.
- A resting order fills ONLY on trades, and by default only on trades strictly through its price
  (buy: trade price < limit; sell: trade price > limit). Why strictly: a trade *at* our price may have
  filled orders queued ahead of ours; only a print beyond our level proves our level was consumed.
  `fill_at_limit_price=True` relaxes this to "at or through" (optimistic). A book that moves through a
  resting order without a trade does not fill it (conservative).
- Partial fills: a trade fills at most its own size across our resting orders (best price first, then
  time priority), rounded down to the lot; the rest keeps resting. Maker fills execute at our limit.
- Taker (IOC) orders: filled on activation against the book top, up to the displayed top size, at the
  touch moved adversely by `taker_slippage` (rounded away from us to the tick) but never beyond the
  order's limit; the unfilled remainder expires (IOC). No book or a touch beyond the limit: expires.
- Fees: maker fee on maker fills, taker fee on taker fills, as fee = notional x rate (Decimal, quote
  currency; a negative rate is a rebate).

Events are the same `VenueEvent`s a live broker produces (`Accepted`, `Filled`, `Cancelled`,
`CancelRefused`, `Rejected`, `Expired`), so `WorkingOrder.apply` consumes both identically.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pipelines.trading.config import PaperConfig, require_utc
from pipelines.trading.instruments import MarketInfo, Rounding, Side, rejection_reason, round_price, round_size
from pipelines.trading.orders import (
    Accepted,
    BookTop,
    Cancelled,
    CancelRefused,
    Expired,
    Fill,
    Filled,
    Liquidity,
    Order,
    OrderKind,
    Rejected,
    VenueEvent,
)


@dataclass(frozen=True)
class Trade:
    """A public trade print: `price` and `size` (Decimal), at `ts` (aware UTC)."""

    price: Decimal
    size: Decimal
    ts: datetime
    aggressor: Side | None = None


class _Op(StrEnum):
    ACTIVATE = "activate"
    CANCEL = "cancel"


@dataclass
class _PaperOrder:
    client_order_id: str
    venue_order_id: str
    side: Side
    kind: OrderKind
    price: Decimal
    size: Decimal
    remaining: Decimal
    seq: int
    live: bool = False
    closed: bool = False


class PaperEngine:
    """One symbol's paper venue. Time only moves forward; every call returns the events it caused."""

    def __init__(self, market: MarketInfo, cfg: PaperConfig) -> None:
        self.market = market
        self.cfg = cfg
        self._latency = timedelta(milliseconds=cfg.latency_ms)
        self._orders: dict[str, _PaperOrder] = {}
        self._pending: list[tuple[datetime, int, _Op, str]] = []
        self._book: BookTop | None = None
        self._now: datetime | None = None
        self._seq = 0
        self._fill_seq = 0

    # ---- inputs -------------------------------------------------------------------------------
    def submit(self, order: Order, now: datetime) -> list[VenueEvent]:
        """Accept `order` for activation after the latency (its fields are copied; it is not mutated)."""
        events = self.advance(now)
        if order.client_order_id in self._orders:
            return [*events, Rejected(order.client_order_id, self._clock(), "duplicate client order id")]
        self._seq += 1
        self._orders[order.client_order_id] = _PaperOrder(
            client_order_id=order.client_order_id,
            venue_order_id=f"paper-{self._seq}",
            side=order.side,
            kind=order.kind,
            price=order.price,
            size=order.size,
            remaining=order.size,
            seq=self._seq,
        )
        self._schedule(self._clock() + self._latency, _Op.ACTIVATE, order.client_order_id)
        return events

    def cancel(self, client_order_id: str, now: datetime) -> list[VenueEvent]:
        """Request a cancel; it takes effect after the latency (fills may still happen before)."""
        events = self.advance(now)
        self._schedule(self._clock() + self._latency, _Op.CANCEL, client_order_id)
        return events

    def on_book(self, book: BookTop) -> list[VenueEvent]:
        """A new book top. Operations due up to its time run against the previous book first."""
        events = self.advance(book.ts)
        self._book = book
        return events

    def on_trade(self, trade: Trade) -> list[VenueEvent]:
        """A public trade: due operations first, then resting orders it trades through fill."""
        events = self.advance(trade.ts)
        events.extend(self._match_trade(trade))
        return events

    def advance(self, now: datetime) -> list[VenueEvent]:
        """Move time to `now`, running activations and cancels that are due, in time order."""
        now = require_utc(now)
        if self._now is not None and now < self._now:
            raise ValueError(f"paper time went backwards: {now} < {self._now}")
        events: list[VenueEvent] = []
        while self._pending and self._pending[0][0] <= now:
            due, _seq, op, cid = heapq.heappop(self._pending)
            self._now = due
            events.extend(self._activate(cid) if op is _Op.ACTIVATE else self._cancel(cid))
        self._now = now
        return events

    @property
    def resting(self) -> list[str]:
        """Client ids of live resting orders."""
        return [o.client_order_id for o in self._orders.values() if o.live and not o.closed]

    # ---- internals ----------------------------------------------------------------------------
    def _clock(self) -> datetime:
        if self._now is None:
            raise ValueError("paper engine has no time yet")
        return self._now

    def _schedule(self, due: datetime, op: _Op, cid: str) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (due, self._seq, op, cid))

    def _activate(self, cid: str) -> list[VenueEvent]:
        order = self._orders[cid]
        ts = self._clock()
        if order.closed:
            return []  # cancelled before it became live
        problem = rejection_reason(self.market, order.price, order.size)
        if problem is not None:
            order.closed = True
            return [Rejected(cid, ts, problem)]
        book = self._book
        if order.kind is OrderKind.POST_ONLY:
            crosses = book is not None and (
                (order.side is Side.BUY and order.price >= book.ask)
                or (order.side is Side.SELL and order.price <= book.bid)
            )
            if crosses:
                order.closed = True
                return [Rejected(cid, ts, "post-only order would take liquidity")]
            order.live = True
            return [Accepted(cid, order.venue_order_id, ts)]
        return [Accepted(cid, order.venue_order_id, ts), *self._take(order, ts)]

    def _take(self, order: _PaperOrder, ts: datetime) -> list[VenueEvent]:
        book = self._book
        events: list[VenueEvent] = []
        if book is not None and book.is_sane():
            slip = Decimal(repr(self.cfg.taker_slippage))
            if order.side is Side.BUY and book.ask <= order.price:
                price = min(order.price, round_price(self.market, book.ask * (1 + slip), Rounding.UP))
                qty = round_size(self.market, min(order.remaining, book.ask_size))
                if qty > 0:
                    self._book = replace(book, ask_size=book.ask_size - qty)
                    events.append(self._fill(order, qty, price, Liquidity.TAKER, ts))
            elif order.side is Side.SELL and book.bid >= order.price:
                price = max(order.price, round_price(self.market, book.bid * (1 - slip), Rounding.DOWN))
                qty = round_size(self.market, min(order.remaining, book.bid_size))
                if qty > 0:
                    self._book = replace(book, bid_size=book.bid_size - qty)
                    events.append(self._fill(order, qty, price, Liquidity.TAKER, ts))
        if order.remaining > 0:
            order.closed = True
            why = "no book" if book is None else "IOC remainder not fillable within limit"
            events.append(Expired(order.client_order_id, ts, why))
        return events

    def _cancel(self, cid: str) -> list[VenueEvent]:
        order = self._orders.get(cid)
        ts = self._clock()
        if order is None or order.closed or order.remaining <= 0:
            return [CancelRefused(cid, ts, "unknown or already closed order")]
        order.closed = True
        order.live = False
        return [Cancelled(cid, ts, "cancelled")]

    def _match_trade(self, trade: Trade) -> list[VenueEvent]:
        at_limit = self.cfg.fill_at_limit_price

        def through(order: _PaperOrder) -> bool:
            if order.side is Side.BUY:
                return trade.price < order.price or (at_limit and trade.price == order.price)
            return trade.price > order.price or (at_limit and trade.price == order.price)

        crossed = [o for o in self._orders.values() if o.live and not o.closed and through(o)]
        # Best price first (highest bid, lowest ask), then time priority.
        crossed.sort(key=lambda o: (-o.price if o.side is Side.BUY else o.price, o.seq))
        budget = trade.size
        events: list[VenueEvent] = []
        for order in crossed:
            qty = round_size(self.market, min(order.remaining, budget))
            if qty <= 0:
                break
            budget -= qty
            events.append(self._fill(order, qty, order.price, Liquidity.MAKER, trade.ts))
        return events

    def _fill(self, order: _PaperOrder, qty: Decimal, price: Decimal, liq: Liquidity, ts: datetime) -> Filled:
        self._fill_seq += 1
        rate = self.market.maker_fee if liq is Liquidity.MAKER else self.market.taker_fee
        order.remaining -= qty
        if order.remaining <= 0:
            order.closed = True
            order.live = False
        fill = Fill(f"paperfill-{self._fill_seq}", qty, price, qty * price * rate, liq, ts)
        return Filled(order.client_order_id, fill)
