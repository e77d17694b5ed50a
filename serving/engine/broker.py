"""The one interface the runtime trades through, and the paper broker (the default: sends nothing anywhere).

`Broker` contract (implemented by `PaperBroker` and `serving.engine.live_broker.LiveBroker`):
- `market(symbol)`: the instrument as the venue describes it (`load_markets`, cached); raises
  `BrokerError` when it cannot be read.
- `place(order, now)` / `cancel(order, now)`: send, and return the `VenueEvent`s already known from the
  answer (ack, immediate fills, rejection). They never raise for a venue refusal (that is a `Rejected`
  or `CancelRefused` event); an unreachable venue returns no events, and the order stays `new` /
  `cancel_requested` until `poll` learns the truth.
- `poll(orders, now)`: order updates (fills, cancels, expiries) for our live orders.
- `open_orders()` / `cancel_venue_order(view, now)`: every open order of the account (ours or not), for
  the clean start and the cancel-all switch.
- `balances()`: total (free + locked) per asset, Decimal, as the venue reports it (reconciliation).
- `on_trade` / `on_book`: market data; the paper broker matches against it, a live broker ignores it.
- `api_health(now)`: (requests, errors) over the configured window, for the API-error-rate switch.
- `export_state()` / `restore_state(state)`: what must survive a restart (paper balances; live: nothing,
  the venue is the state).

Prices and sizes are `Decimal` end to end; times are aware UTC.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from pipelines.errors import RetryableError
from pipelines.trading.config import PaperConfig
from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.orders import (
    BookTop,
    Cancelled,
    Filled,
    Order,
    Rejected,
    VenueEvent,
)
from pipelines.trading.paper import PaperEngine, Trade


class BrokerError(RetryableError):
    """The venue could not be reached or answered with an error we cannot turn into an order event."""


@dataclass(frozen=True)
class VenueOrderView:
    """An open order as the venue lists it (ours or not)."""

    symbol: str
    venue_order_id: str
    client_order_id: str | None
    side: Side
    price: Decimal
    size: Decimal
    filled: Decimal


class Broker(Protocol):
    name: str

    def market(self, symbol: str) -> MarketInfo: ...

    def place(self, order: Order, now: datetime) -> list[VenueEvent]: ...

    def cancel(self, order: Order, now: datetime) -> list[VenueEvent]: ...

    def poll(self, orders: Sequence[Order], now: datetime) -> list[VenueEvent]: ...

    def open_orders(self) -> list[VenueOrderView]: ...

    def cancel_venue_order(self, view: VenueOrderView, now: datetime) -> bool: ...

    def balances(self) -> dict[str, Decimal]: ...

    def on_trade(self, symbol: str, trade: Trade) -> list[VenueEvent]: ...

    def on_book(self, symbol: str, book: BookTop) -> list[VenueEvent]: ...

    def api_health(self, now: datetime) -> tuple[int, int]: ...

    def export_state(self) -> dict[str, str]: ...

    def restore_state(self, state: Mapping[str, str]) -> None: ...

    def close(self) -> None: ...


class RequestWindow:
    """Requests and errors over a rolling window of `window_s` seconds (API error-rate kill switch)."""

    def __init__(self, window_s: float) -> None:
        self._window = timedelta(seconds=window_s)
        self._events: deque[tuple[datetime, bool]] = deque()
        self._lock = threading.Lock()

    def record(self, now: datetime, ok: bool) -> None:
        with self._lock:
            self._events.append((now, ok))

    def counts(self, now: datetime) -> tuple[int, int]:
        with self._lock:
            while self._events and self._events[0][0] < now - self._window:
                self._events.popleft()
            errors = sum(1 for _, ok in self._events if not ok)
            return len(self._events), errors


def base_quote(symbol: str) -> tuple[str, str]:
    """("BTC", "USDT") from the unified "BTC/USDT" (ccxt form)."""
    base, _, quote = symbol.partition("/")
    if not base or not quote:
        raise ValueError(f"symbol {symbol!r} is not in BASE/QUOTE form")
    return base, quote.split(":")[0]


class PaperBroker:
    """Paper trading on `pipelines.trading.paper.PaperEngine` (one per symbol) with a simulated account.

    Nothing leaves the process. Fills happen only when the market trades through a resting price, up to
    the traded size, after the configured latency, with the market's fees. The account starts with
    `starting_balance` of `quote` (and `starting_assets`, e.g. a spot market maker's base) and is settled
    on every fill. Market metadata comes from
    `market_source` (normally the venue's `load_markets` through ccxt, public endpoints only).
    """

    name = "paper"

    def __init__(
        self,
        market_source: Callable[[str], MarketInfo],
        cfg: PaperConfig,
        quote: str,
        starting_balance: Decimal,
        starting_assets: Mapping[str, Decimal] | None = None,
    ) -> None:
        self._market_source = market_source
        self._markets: dict[str, MarketInfo] = {}
        self._cfg = cfg
        self._engines: dict[str, PaperEngine] = {}
        self._orders: dict[str, Order] = {}
        self._balances: dict[str, Decimal] = {**{k: Decimal(v) for k, v in (starting_assets or {}).items()},
                                              quote: starting_balance}
        self._last: dict[str, datetime] = {}
        self._lock = threading.RLock()

    def market(self, symbol: str) -> MarketInfo:
        if symbol not in self._markets:
            self._markets[symbol] = self._market_source(symbol)
        return self._markets[symbol]

    def _engine(self, symbol: str) -> PaperEngine:
        if symbol not in self._engines:
            self._engines[symbol] = PaperEngine(self.market(symbol), self._cfg)
        return self._engines[symbol]

    def _time(self, symbol: str, now: datetime) -> datetime:
        # The paper venue's clock only moves forward; market data may lag the runtime's clock slightly.
        last = self._last.get(symbol)
        t = now if last is None or now > last else last
        self._last[symbol] = t
        return t

    def place(self, order: Order, now: datetime) -> list[VenueEvent]:
        with self._lock:
            base, quote = base_quote(order.symbol)
            have = self._balances.get(quote if order.side is Side.BUY else base, Decimal(0))
            need = order.price * order.size if order.side is Side.BUY else order.size
            if have < need:
                return [Rejected(order.client_order_id, now, f"insufficient balance: {have} < {need}")]
            self._orders[order.client_order_id] = order
            return self._settle(self._engine(order.symbol).submit(order, self._time(order.symbol, now)))

    def cancel(self, order: Order, now: datetime) -> list[VenueEvent]:
        with self._lock:
            engine = self._engine(order.symbol)
            return self._settle(engine.cancel(order.client_order_id, self._time(order.symbol, now)))

    def poll(self, orders: Sequence[Order], now: datetime) -> list[VenueEvent]:
        with self._lock:
            events: list[VenueEvent] = []
            for symbol, engine in self._engines.items():
                events.extend(engine.advance(self._time(symbol, now)))
            return self._settle(events)

    def open_orders(self) -> list[VenueOrderView]:
        with self._lock:
            out = []
            for engine in self._engines.values():
                for cid in engine.resting:
                    o = self._orders[cid]
                    out.append(VenueOrderView(o.symbol, cid, cid, o.side, o.price, o.size, Decimal(0)))
            return out

    def cancel_venue_order(self, view: VenueOrderView, now: datetime) -> bool:
        with self._lock:
            if view.client_order_id is None:
                return False
            self._settle(self._engine(view.symbol).cancel(view.client_order_id, self._time(view.symbol, now)))
            return True

    def balances(self) -> dict[str, Decimal]:
        with self._lock:
            return dict(self._balances)

    def on_trade(self, symbol: str, trade: Trade) -> list[VenueEvent]:
        with self._lock:
            if symbol not in self._engines:
                return []
            t = self._time(symbol, trade.ts)
            if t != trade.ts:
                trade = Trade(trade.price, trade.size, t, trade.aggressor)
            return self._settle(self._engines[symbol].on_trade(trade))

    def on_book(self, symbol: str, book: BookTop) -> list[VenueEvent]:
        with self._lock:
            if symbol not in self._engines:
                try:
                    self._engine(symbol)
                except BrokerError:
                    return []
            t = self._time(symbol, book.ts)
            if t != book.ts:
                book = BookTop(book.bid, book.ask, book.bid_size, book.ask_size, t)
            return self._settle(self._engines[symbol].on_book(book))

    def api_health(self, now: datetime) -> tuple[int, int]:
        return 0, 0

    def export_state(self) -> dict[str, str]:
        with self._lock:
            return {asset: str(amount) for asset, amount in self._balances.items()}

    def restore_state(self, state: Mapping[str, str]) -> None:
        with self._lock:
            if state:
                self._balances = {asset: Decimal(amount) for asset, amount in state.items()}

    def close(self) -> None:
        pass

    def _settle(self, events: list[VenueEvent]) -> list[VenueEvent]:
        """Move balances for fills (quote pays notional + fee on a buy, receives notional - fee on a sell)."""
        for event in events:
            if isinstance(event, Filled):
                order = self._orders.get(event.client_order_id)
                if order is None:
                    continue
                base, quote = base_quote(order.symbol)
                fill = event.fill
                notional = fill.size * fill.price
                sign = Decimal(1) if order.side is Side.BUY else Decimal(-1)
                self._balances[base] = self._balances.get(base, Decimal(0)) + sign * fill.size
                self._balances[quote] = self._balances.get(quote, Decimal(0)) - sign * notional - fill.fee
            elif isinstance(event, Cancelled):
                pass
        return events
