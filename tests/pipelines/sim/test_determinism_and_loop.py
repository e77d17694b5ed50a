"""Same seed, same fills; several markets in one run, each with its own latency, in time order."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pipelines.sim.book import INF, L2Book
from pipelines.sim.feed import ASK, BID, BUY_TRADE, SELL_TRADE, finish_feed
from pipelines.sim.fees import FeeSchedule
from pipelines.sim.latency import ConstantLatency
from pipelines.sim.market import SimMarket
from pipelines.sim.queue import PowerProb
from pipelines.sim.quoting import TouchQuoter, run_quoter
from pipelines.sim.simulation import Simulation

MS = 1_000_000


def random_walk_feed(seed: int, n: int = 3000, venue: str = "simx"):  # type: ignore[no-untyped-def]
    """A synthetic book around a random-walk mid: depth rows at the touch and trades, 2 ms apart."""
    rng = np.random.default_rng(seed)
    kind, ets, rts, px, qty = [], [], [], [], []
    mid = 1000
    for k in range(n):
        t = k * 2 * MS
        mid += int(rng.integers(-1, 2)) if k % 10 == 0 else 0
        bid, ask = mid - 1, mid + 1
        for kd, p in ((BID, bid), (ASK, ask), (BID, bid - 1), (ASK, ask + 1)):
            kind.append(kd), ets.append(t), rts.append(t + MS), px.append(float(p))
            qty.append(float(rng.integers(1, 8)))
        if k % 10 == 9:  # clear the levels that moved away
            for kd, p in ((BID, bid + 1), (ASK, ask - 1), (BID, bid + 2), (ASK, ask - 2)):
                kind.append(kd), ets.append(t), rts.append(t + MS), px.append(float(p)), qty.append(0.0)
        if rng.random() < 0.5:
            buy = rng.random() < 0.5
            kind.append(BUY_TRADE if buy else SELL_TRADE)
            ets.append(t + MS // 2), rts.append(t + MS), px.append(float(ask if buy else bid))
            qty.append(float(rng.integers(1, 6)))
    return finish_feed(venue, "BTC/USDT", kind, ets, rts, px, qty, tick_size=Decimal(1), lot_size=Decimal(1),
                       clock_offset_ns=0)


def _run(seed: int) -> list[tuple[int, int, int, int, int]]:
    m = SimMarket(random_walk_feed(7), PowerProb(2), ConstantLatency(3 * MS, 3 * MS, jitter_ns=4 * MS, seed=seed),
                  FeeSchedule(-0.0001, 0.0005))
    run_quoter(m)
    return [(f.oid, f.px, f.qty, f.exch_ts, f.local_ts) for f in m.fills]


def test_the_same_seed_gives_the_same_fills() -> None:
    first, again, other = _run(42), _run(42), _run(43)
    assert first and first == again
    assert other != first  # the jitter draws really change the run


def test_several_markets_run_in_one_time_order_with_their_own_latency() -> None:
    # Arrange: two venues on the same synthetic market, one 1 ms away, one 20 ms away
    near = SimMarket(random_walk_feed(1, 500, "near"), PowerProb(2), ConstantLatency(MS, MS), FeeSchedule())
    far = SimMarket(random_walk_feed(1, 500, "far"), PowerProb(2), ConstantLatency(20 * MS, 20 * MS), FeeSchedule())
    quoters = {"near": TouchQuoter(near), "far": TouchQuoter(far)}
    seen: list[int] = []

    def step(now: int, markets):  # type: ignore[no-untyped-def]
        seen.append(now)
        for m in markets:
            quoters[m.venue].step()

    # Act
    Simulation([near, far]).run(step)
    # Assert: one clock for both; each venue's answers take its own response latency to reach us
    assert seen == sorted(seen)
    assert near.fills and far.fills
    assert all(f.local_ts - f.exch_ts == MS for f in near.fills)
    assert all(f.local_ts - f.exch_ts == 20 * MS for f in far.fills)


@given(st.lists(st.tuples(st.sampled_from([BID, ASK]), st.integers(90, 110), st.integers(0, 4)), max_size=200))
def test_the_book_keeps_the_best_prices_of_a_naive_book(rows: list[tuple[int, int, int]]) -> None:
    book = L2Book()
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for kind, px, q in rows:
        if (kind == BID and px >= book.best_ask) or (kind == ASK and px <= book.best_bid):
            continue  # crossing updates: the venue's own book never sends them in sequence
        book.apply(kind, px, q)
        side = bids if kind == BID else asks
        if q:
            side[px] = q
        else:
            side.pop(px, None)
        assert book.best_bid == max(bids, default=-INF)
        assert book.best_ask == min(asks, default=INF)


def test_a_venue_config_builds_its_market_and_refuses_nonsense() -> None:
    import pytest
    from pydantic import ValidationError

    from pipelines.sim.config import SimVenueConfig

    cfg = SimVenueConfig(venue="near", queue="power:3", entry_ms=2, response_ms=3, maker_fee=-0.0001)
    m = cfg.build(random_walk_feed(5, 50))
    assert (m.venue, m.queue.name, m.latency.min_entry_ns, m.fees.maker) == ("near", "power3", 2 * MS, -0.0001)
    with pytest.raises(ValidationError):
        SimVenueConfig(queue="fifo")
    with pytest.raises(ValidationError):
        SimVenueConfig(maker_fee=0.02)  # percent, not a fraction
    with pytest.raises(ValidationError):
        SimVenueConfig(latency_ms=5)  # type: ignore[call-arg]  # unknown keys are refused
