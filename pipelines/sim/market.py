"""One simulated market (a venue's symbol): the exchange side that matches, and our side that sees it late.

Two clocks, as in hftbacktest: the exchange processes feed rows at their exchange time and our orders
when they arrive (local send time + entry latency); we see feed rows at their local receive time and the
exchange's answers at exchange time + response latency. At equal times: our feed rows, then answers
reaching us, then exchange rows, then orders reaching the exchange.

Matching (the replay cannot be moved by our orders: no market impact):
- a resting buy at ``p`` fills in full when the best ask drops to ``p`` or below, or on a sell trade
  below ``p``; at a sell trade *at* ``p`` the queue model advances it and fills what the queue reached
  (partial fills for orders larger than the trade); sells mirror this;
- a post-only order that would cross on arrival is rejected (status `EXPIRED`, reason post_only);
- a taker order (GTC or IOC crossing the touch) walks the book level by level up to its limit at each
  level's price; the IOC remainder expires, a GTC remainder rests at its limit;
- fees: maker rate on resting fills, taker rate on crossing fills (a negative maker rate is a rebate).

Prices are ticks and sizes lots (ints) throughout; `Fill` records carry floats for reports and the
Decimal conversion happens in the Broker adapter.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

import numpy as np

from pipelines.sim.feed import Feed
from pipelines.sim.fees import FeeSchedule
from pipelines.sim.latency import LatencyModel
from pipelines.sim.matching import ExchangeSide
from pipelines.sim.orders import (  # re-exported: the market's vocabulary
    BUY,
    CANCELED,
    EXPIRED,
    FILLED,
    GTC,
    GTX,
    INF,
    IOC,
    NEW,
    NONE,
    PARTIAL,
    REQ_CANCEL,
    REQ_NEW,
    REQ_NONE,
    SELL,
    Fill,
    LocalOrder,
    Response,
    SimOrder,
)
from pipelines.sim.queue import QueueModel

__all__ = [
    "BUY", "CANCELED", "EXPIRED", "FILLED", "GTC", "GTX", "INF", "IOC", "NEW", "NONE", "PARTIAL", "REQ_CANCEL",
    "REQ_NEW", "REQ_NONE", "SELL", "Fill", "LocalOrder", "Response", "SimMarket", "SimOrder",
]


class SimMarket(ExchangeSide):
    """Feed replay + matching + latency for one (venue, symbol); see the module docstring.

    This class is our side (orders in, answers out, the two clocks) and the results; the exchange side
    (feed rows, matching, fills) is `pipelines.sim.matching.ExchangeSide`."""

    def __init__(
        self,
        feed: Feed,
        queue: QueueModel,
        latency: LatencyModel,
        fees: FeeSchedule,
        *,
        venue: str | None = None,
    ) -> None:
        self.feed = feed
        self.venue = venue or feed.venue
        self.symbol = feed.symbol
        self.tick = float(feed.tick_size)
        self.lot = float(feed.lot_size)
        self.queue, self.latency, self.fees = queue, latency, fees
        self._kind: list[int] = feed.kind.tolist()
        self._ets: list[int] = feed.exch_ts.tolist()
        self._lts: list[int] = feed.local_ts.tolist()
        self._px: list[int] = feed.px.tolist()
        self._qty: list[int] = feed.qty.tolist()
        self.n = len(self._kind)
        self.i = 0  # next row for the exchange
        self.j = 0  # next row for us
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.best_bid = -INF
        self.best_ask = INF
        self._bbh: list[int] = []  # best bid/ask after each exchange row (our view replays these)
        self._bah: list[int] = []
        self.buy_at: dict[int, list[SimOrder]] = {}
        self.sell_at: dict[int, list[SimOrder]] = {}
        self.exch_orders: dict[int, SimOrder] = {}
        self._to_exch: deque[tuple[int, Any]] = deque()  # (arrival ts, SimOrder | ("cancel", oid))
        self._to_local: deque[Response] = deque()
        self.orders: dict[int, LocalOrder] = {}
        self.fills: list[Fill] = []
        self.position = 0  # lots, our view
        self.balance = 0.0  # quote, our view, fees excluded
        self.fees_paid = 0.0
        self.now = self._lts[0] if self.n else 0
        self.trades_seen = 0
        self.responses_seen = 0
        self.order_history: list[LocalOrder] = []  # every order we sent, as we know it (for reports)
        self.inbox: list[Response] | None = None  # set by a Broker adapter to receive every answer
        self.last_trade: tuple[int, int, int, int] | None = None  # (ts, side, px, qty) at the exchange
        self.rest_log: list[tuple[int, int, int]] = []  # (exchange ts, side, +1 rests / -1 leaves the book)
        self.min_notional, self.min_size = Decimal(0), Decimal(0)  # venue rules (set by SimVenueConfig.build)

    # ---- our side -----------------------------------------------------------------------------------
    @property
    def local_best(self) -> tuple[int, int]:
        """Best bid and ask ticks as we see them now (-INF / INF when a side is empty)."""
        j = self.j
        return (self._bbh[j - 1], self._bah[j - 1]) if j else (-INF, INF)

    def next_local_ts(self) -> int:
        ld = self._lts[self.j] if self.j < self.n else INF
        lo = self._to_local[0].local_ts if self._to_local else INF
        return ld if ld <= lo else lo

    def submit(self, oid: int, side: int, px: int, qty: int, tif: int = GTX) -> LocalOrder:
        if oid in self.orders:
            raise ValueError(f"order id {oid} already in use")
        if qty <= 0 or px <= 0:
            raise ValueError("price and size must be positive (ticks, lots)")
        local = LocalOrder(oid, side, px, qty, tif, self.now)
        self.orders[oid] = local
        self.order_history.append(local)
        arrive = self.now + self.latency.entry(self.now)
        self._push_exch(arrive, SimOrder(oid, side, px, qty, tif))
        return local

    def cancel(self, oid: int) -> bool:
        local = self.orders.get(oid)
        if local is None or local.req == REQ_CANCEL or local.status not in (NONE, NEW, PARTIAL):
            return False
        local.req = REQ_CANCEL
        self._push_exch(self.now + self.latency.entry(self.now), ("cancel", oid))
        return True

    def clear_inactive(self) -> None:
        for oid in [o for o, lo in self.orders.items() if lo.status in (FILLED, CANCELED, EXPIRED)]:
            del self.orders[oid]

    def _push_exch(self, ts: int, item: Any) -> None:
        if self._to_exch and ts < self._to_exch[-1][0]:
            ts = self._to_exch[-1][0]  # FIFO link: a later request never overtakes an earlier one
        self._to_exch.append((ts, item))

    def _receive(self, r: Response) -> None:
        self.responses_seen += 1
        local = self.orders.get(r.oid)
        if local is None:
            if self.inbox is not None:
                self.inbox.append(r)
            return
        if r.exec_qty:
            local.filled += r.exec_qty
            signed = r.exec_qty if local.side == BUY else -r.exec_qty
            self.position += signed
            self.balance -= signed * r.exec_px * self.tick * self.lot
            self.fees_paid += r.fee
        status = r.status
        if status == NONE:  # a refused cancel: the order is gone already (filled) or unknown
            if local.req == REQ_CANCEL:
                local.req = REQ_NONE
        else:
            local.status = status
            local.reason = r.reason or local.reason
            if status in (FILLED, CANCELED, EXPIRED) or local.req == REQ_NEW:
                local.req = REQ_NONE
            if status in (FILLED, CANCELED, EXPIRED):
                local.closed_ts = r.local_ts
        if self.inbox is not None:
            self.inbox.append(r)

    def next_local(self, horizon: int) -> int:
        """Run the exchange through everything before our next event or ``horizon``, whichever is first,
        and return the time of our next event (feed row or answer; INF when there is none).

        Safe because nothing we do from now on reaches the exchange before ``horizon`` (the caller passes
        now + the smallest entry latency); fills found on the way become answers that may come first.
        """
        while True:
            ld = self._lts[self.j] if self.j < self.n else INF
            lo = self._to_local[0].local_ts if self._to_local else INF
            tgt = ld if ld <= lo else lo
            lim = tgt if tgt < horizon else horizon
            eo = self._to_exch[0][0] if self._to_exch else INF
            if eo < lim:
                self._exchange_rows(eo, inclusive=True)
                self._exchange_order()
                continue
            self._exchange_rows(lim, inclusive=False)
            lo = self._to_local[0].local_ts if self._to_local else INF
            if lo < tgt:
                continue
            return tgt

    def next_any(self) -> int:
        """The earliest pending event of any kind (for skipping quiet time)."""
        ld = self._lts[self.j] if self.j < self.n else INF
        lo = self._to_local[0].local_ts if self._to_local else INF
        ed = self._ets[self.i] if self.i < self.n else INF
        eo = self._to_exch[0][0] if self._to_exch else INF
        return min(ld, lo, ed, eo)

    def advance(self, until: int) -> None:
        """Process every event at or before ``until`` on both clocks (ours first at equal times)."""
        while True:
            ld = self._lts[self.j] if self.j < self.n else INF
            lo = self._to_local[0].local_ts if self._to_local else INF
            tgt = ld if ld <= lo else lo
            eo = self._to_exch[0][0] if self._to_exch else INF
            if eo < tgt and eo <= until:
                self._exchange_rows(eo, inclusive=True)
                self._exchange_order()
                continue
            if tgt > until:
                self._exchange_rows(until, inclusive=True)
                if until < INF and until > self.now:
                    self.now = until
                return
            self._exchange_rows(tgt, inclusive=False)
            self.now = tgt
            if ld == tgt:
                self._local_rows(tgt)
            while self._to_local and self._to_local[0].local_ts <= tgt:
                self._receive(self._to_local.popleft())

    def _local_rows(self, tgt: int) -> None:
        lts, j, n = self._lts, self.j, self.n
        while j < n and lts[j] <= tgt:
            j += 1
        if j > self.i:  # zero feed latency: the exchange must have seen the row first
            self._exchange_upto_row(j)
        self.j = j

    def _exchange_upto_row(self, j: int) -> None:
        while self.i < j:
            self._exchange_rows(self._ets[self.i], inclusive=True, stop=j)

    def _exchange_order(self) -> None:
        ts, item = self._to_exch.popleft()
        if isinstance(item, SimOrder):
            self._accept(item, ts)
        else:
            self._cancel_at_exchange(item[1], ts)

    # ---- results ------------------------------------------------------------------------------------
    def marks(self) -> tuple[np.ndarray, np.ndarray]:
        """(exchange time, mid price) after every replayed row with both sides present (for reports)."""
        n = len(self._bbh)
        bb = np.asarray(self._bbh, dtype=np.float64)
        ba = np.asarray(self._bah, dtype=np.float64)
        ok = (bb > -INF) & (ba < INF)
        return self.feed.exch_ts[:n][ok], (bb[ok] + ba[ok]) / 2 * self.tick

    def mid(self) -> float:
        bb, ba = self.best_bid, self.best_ask
        return (bb + ba) / 2 * self.tick if bb > -INF and ba < INF else 0.0

    def equity(self) -> float:
        """balance + position at the mid - fees (quote currency), our view."""
        return self.balance + self.position * self.lot * self.mid() - self.fees_paid
