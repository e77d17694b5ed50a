"""A plain L2 book over feed rows (ticks and lots): what our side of a replay sees.

The matching core (`pipelines.sim.market`) keeps its own inlined copy of the same rules for speed; this
one serves the replay driver (top of book for `BookEvent`s) and the checks against the venue's own
bookTicker. Rules as hftbacktest's hash-map depth: a size of 0 removes the level; a new best bid at or
above the best ask moves the best ask to the first level above it (and vice versa); a CLEAR row drops a
side from its best up to the row's price (a snapshot follows).
"""

from __future__ import annotations

from pipelines.sim.feed import ASK, ASK_CLEAR, BID, BID_CLEAR

INF = 1 << 62
_SCAN = 512


class L2Book:
    __slots__ = ("asks", "best_ask", "best_bid", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.best_bid = -INF
        self.best_ask = INF

    def apply(self, kind: int, px: int, qty: int) -> None:
        if kind == BID:
            self._bid(px, qty)
        elif kind == ASK:
            self._ask(px, qty)
        elif kind == BID_CLEAR:
            for p in [p for p in self.bids if p >= px]:
                del self.bids[p]
            self.best_bid = max(self.bids, default=-INF)
        elif kind == ASK_CLEAR:
            for p in [p for p in self.asks if p <= px]:
                del self.asks[p]
            self.best_ask = min(self.asks, default=INF)

    def _bid(self, px: int, qty: int) -> None:
        if qty:
            self.bids[px] = qty
            if px > self.best_bid:
                self.best_bid = px
                if px >= self.best_ask:
                    self.best_ask = _above(self.asks, px)
        elif self.bids.pop(px, None) is not None and px == self.best_bid:
            self.best_bid = _below(self.bids, px)

    def _ask(self, px: int, qty: int) -> None:
        if qty:
            self.asks[px] = qty
            if px < self.best_ask:
                self.best_ask = px
                if px <= self.best_bid:
                    self.best_bid = _below(self.bids, px)
        elif self.asks.pop(px, None) is not None and px == self.best_ask:
            self.best_ask = _above(self.asks, px)

    def top(self) -> tuple[int, int, int, int]:
        """(best bid, its size, best ask, its size); -INF/INF and 0 on an empty side."""
        bb, ba = self.best_bid, self.best_ask
        return bb, self.bids.get(bb, 0), ba, self.asks.get(ba, 0)


def _below(levels: dict[int, int], start: int) -> int:
    for t in range(start - 1, start - _SCAN, -1):
        if t in levels:
            return t
    return max((p for p in levels if p < start), default=-INF)


def _above(levels: dict[int, int], start: int) -> int:
    for t in range(start + 1, start + _SCAN):
        if t in levels:
            return t
    return min((p for p in levels if p > start), default=INF)
