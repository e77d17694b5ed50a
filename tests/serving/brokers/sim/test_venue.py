"""The simulated venue through the engine's Broker interface, and the replay driver's events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pipelines.sim.feed import BUY_TRADE, SELL_TRADE, finish_feed
from pipelines.sim.fees import FeeSchedule
from pipelines.sim.latency import ConstantLatency
from pipelines.sim.market import SimMarket
from pipelines.sim.queue import RiskAverseQueue
from pipelines.trading.instruments import Side
from pipelines.trading.orders import (
    Accepted,
    Cancelled,
    CancelRefused,
    Filled,
    Liquidity,
    Order,
    OrderKind,
    OrderState,
    Rejected,
    apply_event,
)
from serving.brokers.sim import SimReplay
from serving.engine.broker import Broker
from serving.engine.events import BookEvent, TradeEvent

MS = 1_000_000
T0 = 1_723_161_600_000 * MS  # 2024-08-09 00:00:00 UTC


def _market(venue: str = "simx", latency_ms: int = 5) -> SimMarket:
    """Bid 100.0 x 0.5, ask 100.1 x 0.3 (tick 0.1, lot 0.001); a sell trade through 100.0 at +50 ms."""
    rows = [(1, 0, 100.0, 0.5), (2, 0, 100.1, 0.3), (SELL_TRADE, 50, 99.9, 0.01), (BUY_TRADE, 60, 100.1, 0.002),
            (1, 80, 99.9, 0.2), (2, 90, 100.2, 0.1)]
    feed = finish_feed(venue, "BTC/USDT", [r[0] for r in rows], [T0 + r[1] * MS for r in rows],
                       [T0 + (r[1] + 1) * MS for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                       tick_size=Decimal("0.1"), lot_size=Decimal("0.001"), clock_offset_ns=0)
    return SimMarket(feed, RiskAverseQueue(), ConstantLatency(latency_ms * MS, latency_ms * MS),
                     FeeSchedule(maker=-0.0001, taker=0.0004))


def _order(cid: str, side: Side, price: str, size: str, now: datetime) -> Order:
    return Order(cid, "BTC/USDT", side, OrderKind.POST_ONLY, Decimal(price), Decimal(size), now)


def test_orders_go_through_the_broker_interface_with_decimal_fills_and_rebates() -> None:
    # Arrange
    replay = SimReplay([_market()])
    venue: Broker = replay.venues({"USDT": Decimal(1000)})["simx"]  # mypy checks the protocol
    events = replay.events()
    first = next(events)
    now = replay.clock()
    bid = _order("bid-1", Side.BUY, "100.0", "0.002", now)
    cross = _order("bid-x", Side.BUY, "100.1", "0.001", now)
    off_grid = _order("bid-o", Side.BUY, "100.05", "0.001", now)
    # Act: nothing is known at once (the venue is 5 ms away) except a refusal of an off-grid price
    assert venue.place(bid, now) == [] and venue.place(cross, now) == []
    assert isinstance(venue.place(off_grid, now)[0], Rejected)
    got = []
    for _ in events:
        got.extend(venue.poll([bid, cross], replay.clock()))
    for e in got:
        apply_event(bid if e.client_order_id == "bid-1" else cross, e)
    # Assert: the touch order was accepted and filled by the trade through it, as a maker, with a rebate
    assert isinstance(first, BookEvent) and first.venue == "simx" and first.bid == Decimal("100.0")
    assert [type(e) for e in got if e.client_order_id == "bid-1"] == [Accepted, Filled]
    fill = next(e for e in got if isinstance(e, Filled)).fill
    assert (fill.size, fill.price, fill.liquidity) == (Decimal("0.002"), Decimal("100.0"), Liquidity.MAKER)
    assert fill.fee == Decimal("100.0") * Decimal("0.002") * Decimal("-0.0001")
    assert fill.ts == datetime(2024, 8, 9, 0, 0, 0, 55_000, tzinfo=UTC)  # trade at +50 ms, answer 5 ms later
    assert bid.state is OrderState.FILLED
    # the crossing post-only order was rejected
    assert cross.state is OrderState.REJECTED
    balances = venue.balances()
    assert balances["BTC"] == Decimal("0.002")
    assert balances["USDT"] == Decimal(1000) - Decimal("0.2") - fill.fee


def test_cancel_before_and_after_a_fill() -> None:
    replay = SimReplay([_market()])
    venue = replay.venues()["simx"]
    events = replay.events()
    next(events)
    now = replay.clock()
    resting = _order("ask-1", Side.SELL, "100.2", "0.001", now)
    filled = _order("bid-1", Side.BUY, "100.0", "0.001", now)
    venue.place(resting, now)
    venue.place(filled, now)
    got = []
    for ev in events:
        if isinstance(ev, TradeEvent) and ev.aggressor is Side.SELL:
            # the trade through our bid happened; cancel both
            assert venue.cancel(resting, replay.clock()) == []
            assert venue.cancel(filled, replay.clock()) == []
        got.extend(venue.poll([], replay.clock()))
    kinds = {(type(e).__name__, e.client_order_id) for e in got}
    assert ("Cancelled", "ask-1") in kinds
    assert ("Filled", "bid-1") in kinds and ("CancelRefused", "bid-1") in kinds
    assert venue.open_orders() == []
    assert isinstance(next(e for e in got if e.client_order_id == "ask-1" and not isinstance(e, Accepted)), Cancelled)
    assert any(isinstance(e, CancelRefused) for e in got)


def test_the_replay_merges_venues_in_time_order() -> None:
    replay = SimReplay([_market("near", 1), _market("far", 30)])
    venues = replay.venues()
    out = list(replay.events())
    assert set(venues) == {"near", "far"}
    assert [e.ts for e in out] == sorted(e.ts for e in out)
    assert {e.venue for e in out} == {"near", "far"}
    trades = [e for e in out if isinstance(e, TradeEvent)]
    assert len(trades) == 4 and trades[0].aggressor is Side.SELL and trades[0].price == Decimal("99.9")
