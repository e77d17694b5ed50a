"""The matching core the fake Backpack and Hyperliquid venues share (wire formats live in each venue).

Deliberately simple and deterministic:
- a top of book per market, set by the test (`set_book`);
- a post-only order that would cross the touch is refused (`post_only_cross`); an order crossing the
  touch takes the touch's size at the touch price (taker), IOC remainders expire, GTC remainders rest;
- resting orders fill only through `trade(symbol, price, qty)`: a print strictly through an order's
  price fills it at its limit, partially up to the printed quantity (maker);
- positions are signed base units per market; spot markets also move the quote cash by the notional,
  and a spot sell needs the base asset; every order must be covered by the free collateral
  (`margin_per_notional` x notional + fee, the rest of open orders and open positions counted);
- fees: `maker_fee` / `taker_fee` fractions of notional, charged in the quote asset (negative = rebate).

Scripted faults: `reject_next` (a list of error codes, e.g. ["insufficient"] for a false "insufficient
balance"), `ioc_fill_ratio` (an IOC fills only that share of what it could). Listeners get every event
(`accepted`, `fill`, `canceled`, `expired`) as it happens, for the venue's WebSocket to format.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal


def fmt(value: Decimal) -> str:
    """A decimal as the venues print it: plain notation, no trailing zeros ("60000", "0.001")."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass
class Top:
    bid: Decimal
    ask: Decimal
    bid_qty: Decimal
    ask_qty: Decimal


@dataclass
class MFill:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    size: Decimal
    fee: Decimal
    maker: bool
    ts_ms: int


@dataclass
class MOrder:
    order_id: int
    client_id: str | None
    symbol: str
    side: str  # "buy" / "sell"
    price: Decimal
    size: Decimal
    tif: str  # "gtc" / "ioc"
    post_only: bool
    created_ms: int
    filled: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    status: str = "open"  # open, filled, canceled, expired
    fills: list[MFill] = field(default_factory=list)
    updated_ms: int = 0

    @property
    def remaining(self) -> Decimal:
        return self.size - self.filled

    @property
    def is_open(self) -> bool:
        return self.status == "open"


Listener = Callable[[str, MOrder, MFill | None], None]


def now_ms() -> int:
    return int(time.time() * 1000)


class Matcher:
    def __init__(
        self,
        spot: set[str],
        cash: Decimal,
        *,
        maker_fee: Decimal = Decimal("-0.0001"),
        taker_fee: Decimal = Decimal("0.0004"),
        margin_per_notional: Decimal = Decimal(1),
        lot: dict[str, Decimal] | None = None,
        tick: dict[str, Decimal] | None = None,
        ioc_without_match_expires: bool = False,
    ) -> None:
        self.spot = spot
        self.cash = cash
        self.maker_fee, self.taker_fee = maker_fee, taker_fee
        self.margin = margin_per_notional
        self.lot = lot or {}
        self.tick = tick or {}
        self.ioc_without_match_expires = ioc_without_match_expires
        self.books: dict[str, Top] = {}
        self.positions: dict[str, Decimal] = {}
        self.entry: dict[str, Decimal] = {}
        self.orders: dict[int, MOrder] = {}
        self.fills: list[MFill] = []
        self.listeners: list[Listener] = []
        self.reject_next: list[str] = []
        self.ioc_fill_ratio = Decimal(1)
        self.lock = threading.RLock()
        self._ids = itertools.count(4_000_000_001)
        self._trade_ids = itertools.count(900_001)

    # ---- test controls ---------------------------------------------------------------------------
    def set_book(self, symbol: str, bid: str, ask: str, bid_qty: str = "10", ask_qty: str = "10") -> None:
        with self.lock:
            self.books[symbol] = Top(Decimal(bid), Decimal(ask), Decimal(bid_qty), Decimal(ask_qty))

    def trade(self, symbol: str, price: str, qty: str) -> None:
        px, budget = Decimal(price), Decimal(qty)
        with self.lock:
            crossed = [
                o
                for o in self.orders.values()
                if o.symbol == symbol
                and o.is_open
                and ((o.side == "buy" and px < o.price) or (o.side == "sell" and px > o.price))
            ]
            crossed.sort(key=lambda o: (-o.price if o.side == "buy" else o.price, o.order_id))
            for order in crossed:
                take = min(order.remaining, budget)
                if take <= 0:
                    break
                budget -= take
                self._fill(order, take, order.price, maker=True)

    def position(self, symbol: str) -> Decimal:
        with self.lock:
            return self.positions.get(symbol, Decimal(0))

    def open_orders(self, symbol: str | None = None) -> list[MOrder]:
        with self.lock:
            return [o for o in self.orders.values() if o.is_open and symbol in (None, o.symbol)]

    # ---- book views (the wire shapes of each venue wrap these) --------------------------------------
    def depth(self, symbol: str) -> tuple[list[list[str]], list[list[str]]]:
        """The book top as (bids, asks) of one `[price, size]` text level each; both empty without a book."""
        top = self.books.get(symbol)
        if top is None:
            return [], []
        return [[fmt(top.bid), fmt(top.bid_qty)]], [[fmt(top.ask), fmt(top.ask_qty)]]

    def mark(self, symbol: str, fallback: Decimal) -> Decimal:
        """The mid of the book top, or `fallback` (e.g. the entry price) when no book is set."""
        top = self.books.get(symbol)
        return (top.bid + top.ask) / 2 if top else fallback

    # ---- venue operations ------------------------------------------------------------------------
    def available(self) -> Decimal:
        """Free collateral: cash minus the margin of open orders and perp positions."""
        used = sum(
            (o.price * o.remaining * self.margin for o in self.open_orders() if o.symbol not in self.spot), Decimal(0)
        )
        used += sum(
            (o.price * o.remaining for o in self.open_orders() if o.symbol in self.spot and o.side == "buy"), Decimal(0)
        )
        for symbol, size in self.positions.items():
            if symbol not in self.spot:
                used += abs(size) * self.entry.get(symbol, Decimal(0)) * self.margin
        return self.cash - used

    def place(
        self, symbol: str, side: str, price: Decimal, size: Decimal, tif: str, post_only: bool, client_id: str | None
    ) -> MOrder | str:
        """The new order, or an error code: post_only_cross, insufficient, no_liquidity, bad_size, bad_price."""
        with self.lock:
            if self.reject_next:
                return self.reject_next.pop(0)
            lot = self.lot.get(symbol)
            if size <= 0 or (lot is not None and size % lot != 0):
                return "bad_size"
            tick = self.tick.get(symbol)
            if price <= 0 or (tick is not None and price % tick != 0):
                return "bad_price"
            book = self.books.get(symbol)
            crosses = book is not None and (
                (side == "buy" and price >= book.ask) or (side == "sell" and price <= book.bid)
            )
            if post_only and crosses:
                return "post_only_cross"
            if not self._covered(symbol, side, price, size):
                return "insufficient"
            if tif == "ioc" and not crosses and not self.ioc_without_match_expires:
                return "no_liquidity"
            order = MOrder(next(self._ids), client_id, symbol, side, price, size, tif, post_only, now_ms())
            order.updated_ms = order.created_ms
            self.orders[order.order_id] = order
            self._emit("accepted", order, None)
            if crosses and book is not None:
                self._take(order, book)
            if order.is_open and order.tif == "ioc":
                order.status = "expired"
                self._emit("expired", order, None)
            return order

    def cancel(self, order_id: int) -> MOrder | None:
        with self.lock:
            order = self.orders.get(order_id)
            if order is None or not order.is_open:
                return None
            order.status = "canceled"
            order.updated_ms = now_ms()
            self._emit("canceled", order, None)
            return order

    def cancel_all(self, symbol: str | None = None) -> list[MOrder]:
        with self.lock:
            return [o for o in (self.cancel(x.order_id) for x in self.open_orders(symbol)) if o is not None]

    # ---- internals -----------------------------------------------------------------------------
    def _covered(self, symbol: str, side: str, price: Decimal, size: Decimal) -> bool:
        notional = price * size
        fee = notional * max(self.taker_fee, Decimal(0))
        if symbol in self.spot:
            if side == "sell":
                held = self.positions.get(symbol, Decimal(0))
                held -= sum((o.remaining for o in self.open_orders(symbol) if o.side == "sell"), Decimal(0))
                return held >= size
            return self.available() >= notional + fee
        return self.available() >= notional * self.margin + fee

    def _take(self, order: MOrder, book: Top) -> None:
        top_qty = book.ask_qty if order.side == "buy" else book.bid_qty
        take = min(order.remaining, top_qty)
        if order.tif == "ioc" and self.ioc_fill_ratio < 1:
            lot = self.lot.get(order.symbol, Decimal("0.00000001"))
            take = (take * self.ioc_fill_ratio / lot).to_integral_value(ROUND_FLOOR) * lot
        if take <= 0:
            return
        touch = book.ask if order.side == "buy" else book.bid
        self._fill(order, take, touch, maker=False)
        if order.side == "buy":
            book.ask_qty -= take
        else:
            book.bid_qty -= take

    def _fill(self, order: MOrder, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        notional = qty * price
        fee = notional * (self.maker_fee if maker else self.taker_fee)
        signed = qty if order.side == "buy" else -qty
        old = self.positions.get(order.symbol, Decimal(0))
        new = old + signed
        if new == 0:
            self.entry.pop(order.symbol, None)
        elif old == 0 or (old > 0) != (new > 0):
            self.entry[order.symbol] = price
        elif abs(new) > abs(old):
            self.entry[order.symbol] = (self.entry.get(order.symbol, price) * abs(old) + price * qty) / abs(new)
        self.positions[order.symbol] = new
        if order.symbol in self.spot:
            self.cash -= signed * price
        self.cash -= fee
        order.filled += qty
        order.notional += notional
        order.fee += fee
        order.updated_ms = now_ms()
        if order.remaining == 0:
            order.status = "filled"
        fill = MFill(
            next(self._trade_ids), order.order_id, order.symbol, order.side, price, qty, fee, maker, order.updated_ms
        )
        order.fills.append(fill)
        self.fills.append(fill)
        self._emit("fill", order, fill)

    def _emit(self, kind: str, order: MOrder, fill: MFill | None) -> None:
        for listener in list(self.listeners):
            listener(kind, order, fill)
