"""`SimulatedVenue`: the tick-level simulator behind the engine's `Broker` protocol.

One `SimulatedVenue` per venue name (e.g. ``binanceusdm``), over one `SimMarket` per symbol of that venue.
It is driven by `serving.brokers.sim.replay.SimReplay`, which owns the clock: the engine handles the
replayed market events and calls `place` / `cancel` / `poll` in between, at the replay's instants.

- `place` converts the order's Decimal price and size to ticks and lots (refusing off-grid values with a
  `Rejected`), sends it with the market's entry latency and returns no event: the venue's answer (ack,
  fill, post-only reject) reaches us after the round trip and comes out of `poll`.
- `cancel` sends a cancel the same way; `Cancelled` or `CancelRefused` (already filled) come from `poll`.
- `poll` turns every exchange answer received since the last call into `VenueEvent`s: `Accepted`,
  `Filled` (Decimal size/price/fee, maker or taker; fee negative = rebate), `Cancelled`, `Rejected`
  (post-only would cross), `Expired` (IOC remainder), `CancelRefused`.
- `on_trade` / `on_book` return nothing: the simulator matches against its own replay, not the engine's.
- `balances` are the starting balances plus every fill we have been told about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pipelines.sim.market import (
    BUY,
    CANCELED,
    EXPIRED,
    FILLED,
    GTC,
    GTX,
    IOC,
    NEW,
    NONE,
    PARTIAL,
    REQ_CANCEL,
    Response,
    SimMarket,
)
from pipelines.trading.instruments import MarketInfo, Side
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
from pipelines.trading.paper import Trade
from serving.engine.broker import BrokerError, VenueOrderView, base_quote

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns_to_dt(ns: int) -> datetime:
    """Aware UTC datetime of an epoch-ns stamp (µs precision, like the rest of the system)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _steps(value: Decimal, step: Decimal) -> int | None:
    units = value / step
    return int(units) if units == units.to_integral_value() else None


class SimulatedVenue:
    """A `Broker` over simulated markets; see the module docstring."""

    def __init__(
        self,
        name: str,
        markets: Sequence[SimMarket],
        starting_balances: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.name = name
        self._markets = {m.symbol: m for m in markets}
        for m in markets:
            m.inbox = []
        self._start = {k: Decimal(v) for k, v in (starting_balances or {}).items()}
        self._cid_by_oid: dict[tuple[str, int], str] = {}
        self._oid_by_cid: dict[str, tuple[str, int]] = {}
        self._fill_seq: dict[str, int] = {}
        self._next_oid = 1
        self._infos: dict[str, MarketInfo] = {}

    # ---- instruments ---------------------------------------------------------------------------------
    def sim_market(self, symbol: str) -> SimMarket:
        try:
            return self._markets[symbol]
        except KeyError:
            raise BrokerError(f"{self.name} simulates no market {symbol!r}") from None

    def market(self, symbol: str) -> MarketInfo:
        if symbol not in self._infos:
            m = self.sim_market(symbol)
            self._infos[symbol] = MarketInfo(
                symbol=symbol,
                venue_symbol_id=symbol.split(":")[0].replace("/", ""),
                tick_size=m.feed.tick_size,
                lot_size=m.feed.lot_size,
                min_notional=m.min_notional,
                maker_fee=Decimal(repr(m.fees.maker)),
                taker_fee=Decimal(repr(m.fees.taker)),
                min_size=m.min_size,
            )
        return self._infos[symbol]

    # ---- orders ----------------------------------------------------------------------------------------
    def place(self, order: Order, now: datetime) -> list[VenueEvent]:
        """Post-only orders rest (rejected if they would cross); IOC orders walk the book, the rest expires."""
        return self._send(order, now, GTX if order.kind is OrderKind.POST_ONLY else IOC)

    def place_limit(self, order: Order, now: datetime, *, post_only: bool) -> list[VenueEvent]:
        """A GTC limit: post-only, or (post_only False) allowed to take liquidity with the rest resting."""
        return self._send(order, now, GTX if post_only else GTC)

    def _send(self, order: Order, now: datetime, tif: int) -> list[VenueEvent]:
        m = self.sim_market(order.symbol)
        px = _steps(order.price, m.feed.tick_size)
        lots = _steps(order.size, m.feed.lot_size)
        if px is None or lots is None or lots <= 0:
            return [Rejected(order.client_order_id, now, "price or size not on the venue's tick/lot grid")]
        if order.client_order_id in self._oid_by_cid:
            return [Rejected(order.client_order_id, now, "duplicate client order id")]
        oid = self._next_oid
        self._next_oid += 1
        self._cid_by_oid[(m.symbol, oid)] = order.client_order_id
        self._oid_by_cid[order.client_order_id] = (m.symbol, oid)
        m.submit(oid, BUY if order.side is Side.BUY else -BUY, px, lots, tif)
        return []

    def cancel(self, order: Order, now: datetime) -> list[VenueEvent]:
        ref = self._oid_by_cid.get(order.client_order_id)
        if ref is None:
            return [CancelRefused(order.client_order_id, now, "unknown order")]
        m = self._markets[ref[0]]
        local = m.orders.get(ref[1])
        if local is not None and local.req == REQ_CANCEL:
            return []  # already on its way
        if not m.cancel(ref[1]):
            return [CancelRefused(order.client_order_id, now, "order is no longer open")]
        return []

    def poll(self, orders: Sequence[Order], now: datetime) -> list[VenueEvent]:
        out: list[VenueEvent] = []
        for m in self._markets.values():
            inbox = m.inbox if m.inbox is not None else []
            for r in inbox:
                out.extend(self._events(m, r))
            inbox.clear()
        return out

    def _events(self, m: SimMarket, r: Response) -> list[VenueEvent]:
        cid = self._cid_by_oid.get((m.symbol, r.oid))
        if cid is None:
            return []
        ts = ns_to_dt(r.local_ts)
        events: list[VenueEvent] = []
        if r.exec_qty:
            seq = self._fill_seq.get(cid, 0) + 1
            self._fill_seq[cid] = seq
            price = Decimal(r.exec_px) * m.feed.tick_size
            size = Decimal(r.exec_qty) * m.feed.lot_size
            rate = m.fees.maker if r.maker else m.fees.taker
            fee = price * size * Decimal(repr(rate))
            liquidity = Liquidity.MAKER if r.maker else Liquidity.TAKER
            events.append(Filled(cid, Fill(f"{r.oid}-{seq}", size, price, fee, liquidity, ts)))
        if r.status == NEW:
            events.append(Accepted(cid, str(r.oid), ts))
        elif r.status == CANCELED:
            events.append(Cancelled(cid, ts, "cancelled"))
        elif r.status == EXPIRED and r.reason == "post_only":
            events.append(Rejected(cid, ts, "post-only order would cross the book"))
        elif r.status == EXPIRED:
            events.append(Expired(cid, ts, r.reason))
        elif r.status == NONE:
            events.append(CancelRefused(cid, ts, r.reason))
        elif r.status in (PARTIAL, FILLED) and not r.exec_qty:
            events.append(Accepted(cid, str(r.oid), ts))
        return events

    def open_orders(self) -> list[VenueOrderView]:
        views = []
        for m in self._markets.values():
            for lo in m.orders.values():
                if lo.status in (NONE, NEW, PARTIAL):
                    cid = self._cid_by_oid.get((m.symbol, lo.oid))
                    views.append(VenueOrderView(
                        m.symbol, str(lo.oid), cid, Side.BUY if lo.side == BUY else Side.SELL,
                        Decimal(lo.px) * m.feed.tick_size, Decimal(lo.qty) * m.feed.lot_size,
                        Decimal(lo.filled) * m.feed.lot_size,
                    ))
        return views

    def cancel_venue_order(self, view: VenueOrderView, now: datetime) -> bool:
        return self._markets[view.symbol].cancel(int(view.venue_order_id))

    def balances(self) -> dict[str, Decimal]:
        """Starting balances plus the fills that have reached us (quote pays notional + fee on a buy).

        A derivative market (`BTC/USDT:USDT`) moves the quote the same way but no base balance: its
        position is `positions()` (a short perpetual holds no negative BTC)."""
        out = dict(self._start)
        for m in self._markets.values():
            base, quote = base_quote(m.symbol)
            for f in m.fills:
                if f.local_ts > m.now:
                    continue
                size = Decimal(f.qty) * m.feed.lot_size
                notional = Decimal(f.px) * m.feed.tick_size * size
                fee = notional * Decimal(repr(m.fees.maker if f.maker else m.fees.taker))
                sign = 1 if f.side == BUY else -1
                if ":" not in m.symbol:
                    out[base] = out.get(base, Decimal(0)) + sign * size
                out[quote] = out.get(quote, Decimal(0)) - sign * notional - fee
        return out

    def positions(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        """Signed size per derivative market from the fills that have reached us (ccxt fetchPositions' role)."""
        out: dict[str, Decimal] = {}
        for symbol in symbols:
            m = self._markets.get(symbol)
            if m is None:
                continue
            lots = sum((f.qty if f.side == BUY else -f.qty for f in m.fills if f.local_ts <= m.now), 0)
            out[symbol] = Decimal(lots) * m.feed.lot_size
        return out

    def on_trade(self, symbol: str, trade: Trade) -> list[VenueEvent]:
        return []

    def on_book(self, symbol: str, book: BookTop) -> list[VenueEvent]:
        return []

    def api_health(self, now: datetime) -> tuple[int, int]:
        return 0, 0

    def export_state(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.balances().items()}

    def restore_state(self, state: Mapping[str, str]) -> None:
        pass  # a replay always starts from its configured balances

    def close(self) -> None:
        pass
