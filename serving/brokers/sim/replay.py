"""The replay driver: recorded markets as the engine's events, in event-time order across venues.

Entry point for `alphatide backtest` (to be wired onto the engine)::

    markets = [SimMarket(feed_a, ...), SimMarket(feed_b, ...)]          # one per (venue, symbol)
    replay = SimReplay(markets)
    brokers = replay.venues(starting_balances={"USDT": Decimal(10_000)})  # name -> SimulatedVenue
    engine = build_engine(..., brokers=brokers, clock=replay.clock)      # the engine's own factory
    for event in replay.events():                                         # BookEvent / TradeEvent
        engine.handle(event)                                              # strategies may place/cancel
        for venue in brokers.values():
            engine.apply(venue.poll([], replay.clock()))                  # answers that reached us

`events()` yields, at each instant something reaches us on any market (our receive time on the
exchange's clock, i.e. after feed latency), a `TradeEvent` per public trade and a `BookEvent` when that
market's best bid/ask or their sizes changed, each with ``venue`` set; the `ReplayClock` is advanced to
the instant first. Orders placed on a `SimulatedVenue` while the generator is suspended leave at that
instant. Prices and sizes are Decimal here (ticks x tick size, lots x lot size).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal

from pipelines.sim.book import INF, L2Book
from pipelines.sim.feed import ASK, BID, BUY_TRADE, SELL_TRADE
from pipelines.sim.market import SimMarket
from pipelines.sim.simulation import Simulation
from pipelines.trading.instruments import Side
from serving.brokers.sim.venue import SimulatedVenue, ns_to_dt
from serving.engine.events import BookEvent, ReplayClock, TradeEvent


class SimReplay:
    def __init__(self, markets: Sequence[SimMarket]) -> None:
        self.sim = Simulation(markets)
        self.markets = self.sim.markets
        self.clock = ReplayClock(ns_to_dt(self.sim.now))
        self._books = {id(m): L2Book() for m in self.markets}
        self._seen = {id(m): 0 for m in self.markets}
        self._tops: dict[int, tuple[int, int, int, int]] = {}

    def venues(self, starting_balances: Mapping[str, Decimal] | None = None) -> dict[str, SimulatedVenue]:
        """One `SimulatedVenue` per venue name over its markets (the engine's brokers by venue)."""
        by_venue: dict[str, list[SimMarket]] = {}
        for m in self.markets:
            by_venue.setdefault(m.venue, []).append(m)
        return {name: SimulatedVenue(name, ms, starting_balances) for name, ms in by_venue.items()}

    def events(self) -> Iterator[BookEvent | TradeEvent]:
        while True:
            t = self.sim.next_instant()
            if t >= INF:
                break
            for m in self.markets:
                m.advance(t)
            self.sim.now = t
            self.clock.observe(ns_to_dt(t))
            for m in self.markets:
                yield from self._market_events(m)
        for m in self.markets:
            m.advance(INF - 1)

    def _market_events(self, m: SimMarket) -> Iterator[BookEvent | TradeEvent]:
        key = id(m)
        lo, hi = self._seen[key], m.j
        if lo == hi:
            return
        self._seen[key] = hi
        book = self._books[key]
        feed = m.feed
        kind, px, qty, lts = feed.kind, feed.px, feed.qty, feed.local_ts
        tick, lot = feed.tick_size, feed.lot_size
        for r in range(lo, hi):
            k = int(kind[r])
            if k in (BUY_TRADE, SELL_TRADE):
                yield TradeEvent(
                    m.symbol, Decimal(int(px[r])) * tick, Decimal(int(qty[r])) * lot, ns_to_dt(int(lts[r])),
                    Side.BUY if k == BUY_TRADE else Side.SELL, m.venue,
                )
            else:
                book.apply(k, int(px[r]), int(qty[r]))
        top = book.top()
        if top != self._tops.get(key) and top[0] > -INF and top[2] < INF:
            self._tops[key] = top
            bb, bq, ba, aq = top
            yield BookEvent(
                m.symbol, Decimal(bb) * tick, Decimal(ba) * tick, Decimal(bq) * lot, Decimal(aq) * lot,
                ns_to_dt(int(lts[hi - 1])), m.venue,
            )


def top_of_book_after_rows(
    feed_kind: Sequence[int], feed_px: Sequence[int], feed_qty: Sequence[int]
) -> list[tuple[int, int]]:
    """Best bid/ask ticks after each row (a check against the venue's bookTicker)."""
    book = L2Book()
    out = []
    for k, p, q in zip(feed_kind, feed_px, feed_qty, strict=True):
        if k in (BID, ASK) or k > SELL_TRADE:
            book.apply(int(k), int(p), int(q))
        out.append((book.best_bid, book.best_ask))
    return out
