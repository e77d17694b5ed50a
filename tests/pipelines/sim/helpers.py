"""Hand-made feeds for the simulator's scenario tests (ticks of 1, lots of 1, times in ms)."""

from __future__ import annotations

from decimal import Decimal

from pipelines.sim.feed import ASK, BID, Feed, finish_feed
from pipelines.sim.fees import FeeSchedule
from pipelines.sim.latency import ConstantLatency
from pipelines.sim.market import SimMarket
from pipelines.sim.queue import QueueModel, RiskAverseQueue

MS = 1_000_000


def feed(rows: list[tuple[int, int, int, int]], feed_latency_ms: int = 1, venue: str = "simx",
         symbol: str = "BTC/USDT") -> Feed:
    """rows: (kind, exchange ms, price ticks, size lots); received ``feed_latency_ms`` later."""
    return finish_feed(
        venue, symbol,
        [r[0] for r in rows], [r[1] * MS for r in rows], [(r[1] + feed_latency_ms) * MS for r in rows],
        [float(r[2]) for r in rows], [float(r[3]) for r in rows],
        tick_size=Decimal(1), lot_size=Decimal(1), clock_offset_ns=0,
    )


def book(t_ms: int, bids: dict[int, int], asks: dict[int, int]) -> list[tuple[int, int, int, int]]:
    return [(BID, t_ms, p, q) for p, q in bids.items()] + [(ASK, t_ms, p, q) for p, q in asks.items()]


def market(rows: list[tuple[int, int, int, int]], *, queue: QueueModel | None = None, entry_ms: int = 5,
           response_ms: int = 5, fees: FeeSchedule | None = None, **kw: object) -> SimMarket:
    return SimMarket(feed(rows, **kw), queue or RiskAverseQueue(), ConstantLatency(entry_ms * MS, response_ms * MS),
                     fees or FeeSchedule(0.0, 0.0))


def run_to(m: SimMarket, t_ms: int) -> None:
    """Run both clocks of one market through ``t_ms`` (exchange first as far as safe, then everything)."""
    m.next_local((t_ms + 1) * MS)
    m.advance(t_ms * MS)
