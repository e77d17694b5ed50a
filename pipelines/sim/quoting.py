"""The benchmark's simple quoting strategy: one order of ``lots`` at the best bid and one at the best ask
(post-only), re-quoted when the touch moves. The same rules run inside hftbacktest in `bench.sim`.

On every step, per side: orders with a request in flight are left alone; a working order at another
price than the touch is cancelled; when the side has no order (working or in flight), a new one is sent
at the touch. A re-quote therefore takes a cancel round trip, as it would on a venue without amend.
"""

from __future__ import annotations

from pipelines.sim.market import BUY, GTX, INF, NEW, PARTIAL, REQ_NONE, SELL, SimMarket
from pipelines.sim.simulation import Simulation


class TouchQuoter:
    def __init__(self, market: SimMarket, lots: int = 1, first_oid: int = 1) -> None:
        self.market = market
        self.lots = lots
        self.next_oid = first_oid
        self._seen: tuple[int, int, int, int] | None = None

    def step(self) -> None:
        m = self.market
        bb, ba = m.local_best
        if bb <= -INF or ba >= INF:
            return
        key = (bb, ba, len(m.orders), m.responses_seen)
        if key == self._seen:
            return  # nothing this step could act on has changed
        self._seen = key
        m.clear_inactive()
        has_buy = has_sell = False
        for o in list(m.orders.values()):
            if o.side == BUY:
                has_buy = True
                target = bb
            else:
                has_sell = True
                target = ba
            if o.req == REQ_NONE and o.status in (NEW, PARTIAL) and o.px != target:
                m.cancel(o.oid)
        if not has_buy:
            m.submit(self.next_oid, BUY, bb, self.lots, GTX)
            self.next_oid += 1
        if not has_sell:
            m.submit(self.next_oid, SELL, ba, self.lots, GTX)
            self.next_oid += 1
        self._seen = (bb, ba, len(m.orders), m.responses_seen)


def run_quoter(market: SimMarket, lots: int = 1) -> TouchQuoter:
    """Replay the whole feed with a `TouchQuoter`, stepping after every instant something reaches us."""
    quoter = TouchQuoter(market, lots)
    Simulation([market]).run(lambda now, markets: quoter.step())
    return quoter
