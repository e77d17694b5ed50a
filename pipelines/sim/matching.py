"""The exchange side of a simulated market (`pipelines.sim.market.SimMarket`): feed rows applied to the
book at exchange time, our resting orders matched against them (the queue model for at-price trades),
taker orders walking the book, post-only and IOC rules, and the answers sent back with the response
latency. The matching rules are in the `pipelines.sim.market` module docstring.

A mixin: `SimMarket` owns the state (declared below for the type checker) and our side. Kept as plain
methods on one object, not a separate matcher, because `_exchange_rows` is the replay's hot loop and an
extra indirection per row would cost; prices are ticks and sizes lots (ints), times integer ns.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pipelines.sim.feed import ASK, ASK_CLEAR, BID, BID_CLEAR, BUY_TRADE
from pipelines.sim.fees import FeeSchedule
from pipelines.sim.latency import LatencyModel
from pipelines.sim.orders import (
    BUY,
    CANCELED,
    EXPIRED,
    FILLED,
    GTX,
    INF,
    IOC,
    NEW,
    NONE,
    PARTIAL,
    SELL,
    Fill,
    Response,
    SimOrder,
)
from pipelines.sim.queue import QueueModel, filled_lots

_SCAN_LIMIT = 512


class ExchangeSide:
    """Exchange-side matching for `SimMarket` (which sets every attribute declared here)."""

    venue: str
    symbol: str
    tick: float
    lot: float
    queue: QueueModel
    latency: LatencyModel
    fees: FeeSchedule
    n: int
    i: int
    bids: dict[int, int]
    asks: dict[int, int]
    best_bid: int
    best_ask: int
    buy_at: dict[int, list[SimOrder]]
    sell_at: dict[int, list[SimOrder]]
    exch_orders: dict[int, SimOrder]
    fills: list[Fill]
    trades_seen: int
    last_trade: tuple[int, int, int, int] | None
    rest_log: list[tuple[int, int, int]]
    _kind: list[int]
    _ets: list[int]
    _px: list[int]
    _qty: list[int]
    _bbh: list[int]
    _bah: list[int]
    _to_exch: deque[tuple[int, Any]]
    _to_local: deque[Response]

    def _respond(self, exch_ts: int, o: SimOrder, exec_px: int, exec_qty: int, maker: bool, fee: float,
                 reason: str = "") -> None:
        ts = exch_ts + self.latency.response(exch_ts)
        if self._to_local and ts < self._to_local[-1].local_ts:
            ts = self._to_local[-1].local_ts
        self._to_local.append(Response(ts, exch_ts, o.oid, o.status, o.leaves, exec_px, exec_qty, maker, fee, reason))
        if exec_qty:
            self.fills.append(Fill(self.venue, self.symbol, o.oid, o.side, exec_px, exec_qty, maker, fee, exch_ts, ts))

    def _exchange_rows(self, limit: int, *, inclusive: bool, stop: int | None = None) -> None:
        """The hot loop: apply feed rows with exchange time < limit (<= when inclusive)."""
        kind, ets, px, qty = self._kind, self._ets, self._px, self._qty
        bids, asks, bbh, bah = self.bids, self.asks, self._bbh.append, self._bah.append
        buy_at, sell_at = self.buy_at, self.sell_at
        i, end = self.i, self.n if stop is None else stop
        bb, ba = self.best_bid, self.best_ask
        if not inclusive:
            limit -= 1
        while i < end and ets[i] <= limit:
            k = kind[i]
            p = px[i]
            q = qty[i]
            if k == BID:
                prev = bids.get(p, 0)
                if q:
                    bids[p] = q
                    if p > bb:
                        bb = p
                        if bb >= ba:
                            ba = self._ask_above(bb)
                        if sell_at:
                            self.best_bid, self.best_ask = bb, ba
                            self._cross_sells(bb, ets[i])
                elif prev:
                    del bids[p]
                    if p == bb:
                        bb = self._bid_below(bb)
                if p in buy_at:
                    self._depth_change(buy_at[p], prev, q)
            elif k == ASK:
                prev = asks.get(p, 0)
                if q:
                    asks[p] = q
                    if p < ba:
                        ba = p
                        if ba <= bb:
                            bb = self._bid_below(ba)
                        if buy_at:
                            self.best_bid, self.best_ask = bb, ba
                            self._cross_buys(ba, ets[i])
                elif prev:
                    del asks[p]
                    if p == ba:
                        ba = self._ask_above(ba)
                if p in sell_at:
                    self._depth_change(sell_at[p], prev, q)
            elif k <= 4:
                self.trades_seen += 1
                side = BUY if k == BUY_TRADE else SELL
                self.last_trade = (ets[i], side, p, q)
                if side == BUY and sell_at:
                    self.best_bid, self.best_ask = bb, ba
                    self._trade_hits(sell_at, p, q, ets[i], SELL)
                elif side == SELL and buy_at:
                    self.best_bid, self.best_ask = bb, ba
                    self._trade_hits(buy_at, p, q, ets[i], BUY)
            else:
                self.best_bid, self.best_ask = bb, ba
                self._clear(k, p)
                bb, ba = self.best_bid, self.best_ask
            bbh(bb)
            bah(ba)
            i += 1
        self.i = i
        self.best_bid, self.best_ask = bb, ba

    def _bid_below(self, start: int) -> int:
        bids = self.bids
        if not bids:
            return -INF
        for t in range(start - 1, start - _SCAN_LIMIT, -1):
            if t in bids:
                return t
        below = [p for p in bids if p < start]
        return max(below) if below else -INF

    def _ask_above(self, start: int) -> int:
        asks = self.asks
        if not asks:
            return INF
        for t in range(start + 1, start + _SCAN_LIMIT):
            if t in asks:
                return t
        above = [p for p in asks if p > start]
        return min(above) if above else INF

    def _clear(self, kind: int, upto: int) -> None:
        if kind == BID_CLEAR:
            for p in [p for p in self.bids if p >= upto]:
                del self.bids[p]
            self.best_bid = max(self.bids) if self.bids else -INF
        elif kind == ASK_CLEAR:
            for p in [p for p in self.asks if p <= upto]:
                del self.asks[p]
            self.best_ask = min(self.asks) if self.asks else INF

    def _depth_change(self, orders: list[SimOrder], prev: int, new: int) -> None:
        depth = self.queue.depth
        for o in orders:
            depth(o, prev, new)

    def _cross_sells(self, bb: int, ts: int) -> None:
        for p in [p for p in self.sell_at if p <= bb]:
            for o in list(self.sell_at[p]):
                self._fill(o, ts, o.px, o.leaves, True)

    def _cross_buys(self, ba: int, ts: int) -> None:
        for p in [p for p in self.buy_at if p >= ba]:
            for o in list(self.buy_at[p]):
                self._fill(o, ts, o.px, o.leaves, True)

    def _trade_hits(self, book: dict[int, list[SimOrder]], p: int, q: int, ts: int, side: int) -> None:
        """A trade at ``p`` against our resting ``side`` orders: through-price fills, at-price queue."""
        for lvl in list(book):
            through = lvl < p if side == SELL else lvl > p
            if through:
                for o in list(book[lvl]):
                    self._fill(o, ts, o.px, o.leaves, True)
            elif lvl == p:
                for o in list(book[lvl]):
                    self.queue.trade(o, q)
                    got = filled_lots(o)
                    if got:
                        self._fill(o, ts, o.px, min(got, o.leaves), True)

    def _fill(self, o: SimOrder, ts: int, px: int, lots: int, maker: bool) -> None:
        o.leaves -= lots
        o.status = FILLED if o.leaves <= 0 else PARTIAL
        fee = self.fees.fee(px * self.tick * lots * self.lot, maker)
        if o.status == FILLED and o.oid in self.exch_orders:
            self._unrest(o, ts)
        self._respond(ts, o, px, lots, maker, fee)

    def _rest(self, o: SimOrder, ts: int) -> None:
        self.exch_orders[o.oid] = o
        self.rest_log.append((ts, o.side, 1))
        book = self.buy_at if o.side == BUY else self.sell_at
        book.setdefault(o.px, []).append(o)
        level = (self.bids if o.side == BUY else self.asks).get(o.px, 0)
        self.queue.new_order(o, level)

    def _unrest(self, o: SimOrder, ts: int) -> None:
        del self.exch_orders[o.oid]
        self.rest_log.append((ts, o.side, -1))
        book = self.buy_at if o.side == BUY else self.sell_at
        lst = book[o.px]
        lst.remove(o)
        if not lst:
            del book[o.px]

    def _accept(self, o: SimOrder, ts: int) -> None:
        crosses = o.px >= self.best_ask if o.side == BUY else o.px <= self.best_bid
        if crosses and o.tif == GTX:
            o.status = EXPIRED
            self._respond(ts, o, 0, 0, False, 0.0, "post_only")
            return
        if crosses:
            self._take(o, ts)
            if o.leaves == 0:
                return
            if o.tif == IOC:
                o.status = EXPIRED
                self._respond(ts, o, 0, 0, False, 0.0, "ioc_remainder")
                return
        elif o.tif == IOC:
            o.status = EXPIRED
            self._respond(ts, o, 0, 0, False, 0.0, "ioc_no_liquidity")
            return
        if o.status == NONE:
            o.status = NEW
            self._respond(ts, o, 0, 0, False, 0.0)
        self._rest(o, ts)

    def _take(self, o: SimOrder, ts: int) -> None:
        """Walk the opposite side from the touch to the limit, one fill per level (the replay is not
        depleted by our fills: keep taker orders small against the displayed size)."""
        if o.side == BUY:
            levels = sorted((p, q) for p, q in self.asks.items() if p <= o.px)
        else:
            levels = sorted(((p, q) for p, q in self.bids.items() if p >= o.px), reverse=True)
        for p, q in levels:
            lots = min(q, o.leaves)
            self._fill(o, ts, p, lots, False)
            if o.leaves == 0:
                return

    def _cancel_at_exchange(self, oid: int, ts: int) -> None:
        o = self.exch_orders.get(oid)
        if o is None:
            ghost = SimOrder(oid, 0, 0, 0, 0)
            self._respond(ts, ghost, 0, 0, False, 0.0, "cancel_rejected: not open")
            return
        self._unrest(o, ts)
        o.status = CANCELED
        self._respond(ts, o, 0, 0, False, 0.0)
