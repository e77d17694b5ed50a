"""The shadow: every order an execution sends is mirrored into a simulated fill model (SPEC 10 PnL gap).

`ShadowBroker` wraps an execution's broker (live or paper) and passes every call through unchanged. On the
way it mirrors into `Shadow`:
- each order placed (and each cancel) into a `pipelines.trading.paper.PaperEngine` per (venue, symbol),
  the paper broker's own matching: the order becomes live after the paper latency, a resting order fills
  only on trades strictly through its price (up to the printed size), an IOC order takes the book top;
- the market data the engine hands the broker (`on_trade`, `on_book`): the shadow sees what the engine
  sees, nothing else;
- every `Filled` the real broker reports for one of the engine's orders (from place, cancel, poll or the
  market data), deduplicated by fill id; an order the venue rejects is void in the shadow as well.

Both sides are booked the same way, per strategy (the order's owner in the execution's tracked orders):
PnL = cash flows + position x mark - fees, the mark being the last trade price the shadow saw on that
market (the book's mid before any trade). So the gap between the two is only what the venue's fills did
differently (price, size, timing, fees) from the simulated fills of the same orders.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipelines.trading.config import PaperConfig
from pipelines.trading.instruments import Side
from pipelines.trading.orders import BookTop, Filled, Order, Rejected, VenueEvent
from pipelines.trading.paper import PaperEngine, Trade
from serving.engine.broker import Broker, VenueOrderView

StrategyOf = Callable[[str], str | None]  # client order id -> owning strategy (None: not the engine's)


@dataclass
class Ledger:
    """Cash, positions and fees of one strategy's fills (quote currency; positions signed, base units)."""

    cash: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    positions: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    fills: int = 0

    def book(self, venue: str, symbol: str, side: Side, size: Decimal, price: Decimal, fee: Decimal) -> None:
        signed = size if side is Side.BUY else -size
        key = (venue, symbol)
        self.positions[key] = self.positions.get(key, Decimal(0)) + signed
        self.cash -= signed * price
        self.fees += fee
        self.fills += 1

    def pnl(self, marks: Mapping[tuple[str, str], Decimal]) -> Decimal:
        held = sum((q * marks[k] for k, q in self.positions.items() if q and k in marks), Decimal(0))
        return self.cash + held - self.fees


@dataclass(frozen=True)
class PnlPair:
    strategy_id: str
    live: Decimal
    simulated: Decimal
    live_fills: int
    simulated_fills: int

    def gap(self, floor: Decimal) -> float:
        """|live - simulated| / max(|simulated|, floor) (0 when both are 0)."""
        base = max(abs(self.simulated), floor)
        return float(abs(self.live - self.simulated) / base) if base > 0 else 0.0


class Shadow:
    """The simulated twin of every mirrored order, and both sides' books (module docstring)."""

    def __init__(self, paper: PaperConfig) -> None:
        self.paper = paper
        self._engines: dict[tuple[str, str], PaperEngine] = {}
        self._clock: dict[tuple[str, str], datetime] = {}
        self._owner: dict[str, tuple[str, str, str, Side]] = {}  # cid -> (strategy, venue, symbol, side)
        self._seen: set[tuple[str, str]] = set()  # (cid, fill id) of the live fills booked
        self._filled_live: set[str] = set()
        self.live: dict[str, Ledger] = {}
        self.simulated: dict[str, Ledger] = {}
        self.marks: dict[tuple[str, str], Decimal] = {}
        self._lock = threading.RLock()

    # ---- mirroring ----------------------------------------------------------------------------
    def _time(self, key: tuple[str, str], now: datetime) -> datetime:
        last = self._clock.get(key)
        t = now if last is None or now > last else last
        self._clock[key] = t
        return t

    def _engine(self, broker: Broker, venue: str, symbol: str) -> PaperEngine:
        key = (venue, symbol)
        if key not in self._engines:
            self._engines[key] = PaperEngine(broker.market(symbol), self.paper)
        return self._engines[key]

    def place(self, broker: Broker, venue: str, strategy_id: str, order: Order, now: datetime) -> None:
        with self._lock:
            self._owner[order.client_order_id] = (strategy_id, venue, order.symbol, order.side)
            engine = self._engine(broker, venue, order.symbol)
            self._simulated(engine.submit(order, self._time((venue, order.symbol), now)))

    def cancel(self, venue: str, order: Order, now: datetime) -> None:
        with self._lock:
            engine = self._engines.get((venue, order.symbol))
            if engine is not None and order.client_order_id in self._owner:
                self._simulated(engine.cancel(order.client_order_id, self._time((venue, order.symbol), now)))

    def on_trade(self, venue: str, symbol: str, trade: Trade) -> None:
        with self._lock:
            key = (venue, symbol)
            self.marks[key] = trade.price
            engine = self._engines.get(key)
            if engine is not None:
                t = self._time(key, trade.ts)
                self._simulated(engine.on_trade(Trade(trade.price, trade.size, t, trade.aggressor)))

    def on_book(self, venue: str, symbol: str, book: BookTop) -> None:
        with self._lock:
            key = (venue, symbol)
            if key not in self.marks and book.is_sane():
                self.marks[key] = (book.bid + book.ask) / 2
            engine = self._engines.get(key)
            if engine is not None:
                t = self._time(key, book.ts)
                self._simulated(engine.on_book(BookTop(book.bid, book.ask, book.bid_size, book.ask_size, t)))

    def _simulated(self, events: Sequence[VenueEvent]) -> None:
        for event in events:
            if isinstance(event, Filled) and event.client_order_id in self._owner:
                sid, venue, symbol, side = self._owner[event.client_order_id]
                f = event.fill
                self.simulated.setdefault(sid, Ledger()).book(venue, symbol, side, f.size, f.price, f.fee)

    def observe_live(self, events: Sequence[VenueEvent]) -> None:
        """The real broker's fills for mirrored orders (each fill once); an order the venue rejected is void
        in the shadow too (its simulated fills are not booked: the gap measures fills, not refusals)."""
        with self._lock:
            for event in events:
                if isinstance(event, Rejected) and event.client_order_id not in self._filled_live:
                    self._owner.pop(event.client_order_id, None)
                if not isinstance(event, Filled) or event.client_order_id not in self._owner:
                    continue
                self._filled_live.add(event.client_order_id)
                key = (event.client_order_id, event.fill.fill_id)
                if key in self._seen:
                    continue
                self._seen.add(key)
                sid, venue, symbol, side = self._owner[event.client_order_id]
                f = event.fill
                self.live.setdefault(sid, Ledger()).book(venue, symbol, side, f.size, f.price, f.fee)

    # ---- results ------------------------------------------------------------------------------
    def pairs(self) -> list[PnlPair]:
        """Live and simulated PnL of every strategy with a mirrored order."""
        with self._lock:
            sids = sorted({o[0] for o in self._owner.values()})
            out = []
            for sid in sids:
                live, sim = self.live.get(sid, Ledger()), self.simulated.get(sid, Ledger())
                out.append(PnlPair(sid, live.pnl(self.marks), sim.pnl(self.marks), live.fills, sim.fills))
            return out

    def widest(self, floor: Decimal) -> PnlPair | None:
        """The strategy whose live PnL is farthest from its shadow's (relative to max(|simulated|, floor))."""
        pairs = self.pairs()
        return max(pairs, key=lambda p: p.gap(floor)) if pairs else None


class ShadowBroker:
    """A `Broker` that is `inner` plus the shadow's mirror (module docstring)."""

    def __init__(self, inner: Broker, venue: str, shadow: Shadow, strategy_of: StrategyOf) -> None:
        self.inner, self.venue, self.shadow, self.strategy_of = inner, venue, shadow, strategy_of
        self.name = inner.name

    def __getattr__(self, attr: str) -> Any:  # anything else of the real broker (e.g. `exchange`)
        return getattr(self.inner, attr)

    def _live(self, events: list[VenueEvent]) -> list[VenueEvent]:
        self.shadow.observe_live(events)
        return events

    def _mirror(self, order: Order, now: datetime) -> None:
        sid = self.strategy_of(order.client_order_id)
        if sid is not None:
            self.shadow.place(self.inner, self.venue, sid, order, now)

    def market(self, symbol: str) -> Any:
        return self.inner.market(symbol)

    def place(self, order: Order, now: datetime) -> list[VenueEvent]:
        self._mirror(order, now)
        return self._live(self.inner.place(order, now))

    def place_limit(self, order: Order, now: datetime, *, post_only: bool) -> list[VenueEvent]:
        self._mirror(order, now)
        return self._live(self.inner.place_limit(order, now, post_only=post_only))  # type: ignore[attr-defined]

    def cancel(self, order: Order, now: datetime) -> list[VenueEvent]:
        self.shadow.cancel(self.venue, order, now)
        return self._live(self.inner.cancel(order, now))

    def poll(self, orders: Sequence[Order], now: datetime) -> list[VenueEvent]:
        return self._live(self.inner.poll(orders, now))

    def open_orders(self) -> list[VenueOrderView]:
        return self.inner.open_orders()

    def cancel_venue_order(self, view: VenueOrderView, now: datetime) -> bool:
        return self.inner.cancel_venue_order(view, now)

    def balances(self) -> dict[str, Decimal]:
        return self.inner.balances()

    def on_trade(self, symbol: str, trade: Trade) -> list[VenueEvent]:
        self.shadow.on_trade(self.venue, symbol, trade)
        return self._live(self.inner.on_trade(symbol, trade))

    def on_book(self, symbol: str, book: BookTop) -> list[VenueEvent]:
        self.shadow.on_book(self.venue, symbol, book)
        return self._live(self.inner.on_book(symbol, book))

    def api_health(self, now: datetime) -> tuple[int, int]:
        return self.inner.api_health(now)

    def export_state(self) -> dict[str, str]:
        return self.inner.export_state()

    def restore_state(self, state: Mapping[str, str]) -> None:
        self.inner.restore_state(state)

    def close(self) -> None:
        self.inner.close()
