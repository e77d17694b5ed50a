"""Scenarios for the matching core: queue position per model, latency both ways, post-only, taker walk,
fees and rebates."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.sim.feed import ASK, BID, BUY_TRADE, SELL_TRADE
from pipelines.sim.fees import FeeSchedule
from pipelines.sim.latency import FeedLatency, OrderLatencyTable
from pipelines.sim.market import BUY, EXPIRED, FILLED, GTC, GTX, IOC, NEW, PARTIAL, SELL
from pipelines.sim.queue import LogProb, PowerProb, ProbQueue, QueueModel, RiskAverseQueue, queue_model
from tests.pipelines.sim.helpers import MS, book, market, run_to

MODELS = ["risk_averse", "power:2", "power2:3", "log", "log2"]


def _queue_scenario() -> list[tuple[int, int, int, int]]:
    rows = book(0, {100: 5, 99: 10}, {101: 7})
    # five lots ahead of us at 100 trade away one by one, each trade followed by the depth update showing
    # it (one lot joins behind us at the end)
    for k in range(5):
        rows += [(SELL_TRADE, 20 + 2 * k, 100, 1), (BID, 21 + 2 * k, 100, 4 - k if k < 4 else 1)]
    rows += [(SELL_TRADE, 40, 100, 1)]  # the sixth lot traded at 100 is ours
    return rows


@pytest.mark.parametrize("spec", MODELS)
def test_resting_order_fills_only_after_the_queue_ahead_traded(spec: str) -> None:
    # Arrange: our buy of 1 lot joins 5 lots at 100 (sent at 2 ms, arrives at 7 ms)
    m = market(_queue_scenario(), queue=queue_model(spec))
    run_to(m, 2)
    m.submit(1, BUY, 100, 1, GTX)
    # Act / Assert: after the five lots ahead traded, still nothing for us
    run_to(m, 39)
    assert m.fills == []
    # the next trade at our price reaches us
    run_to(m, 60)
    assert [(f.px, f.qty, f.maker, f.exch_ts) for f in m.fills] == [(100, 1, True, 40 * MS)]


def test_risk_averse_ignores_cancellations_ahead_but_prob_models_advance() -> None:
    # Arrange: 5 lots ahead, 5 join behind us, then 4 lots are cancelled (no trade), then 2 lots trade
    rows = [*book(0, {100: 5}, {101: 3}), (BID, 20, 100, 10), (BID, 30, 100, 6), (SELL_TRADE, 40, 100, 2)]
    results = {}
    for spec in ("risk_averse", "power:2"):
        m = market(rows, queue=queue_model(spec))
        run_to(m, 2)
        m.submit(1, BUY, 100, 1, GTX)
        run_to(m, 60)
        results[spec] = len(m.fills)
    # Assert: risk-averse keeps 5 ahead (2 traded: 3 left); power-2 put half of the cancel ahead of us
    # (front 5 - 0.5*4 = 3; 2 traded: 1 left): neither is filled yet
    assert results == {"risk_averse": 0, "power:2": 0}
    # two more lots trade: the power-2 queue is through (1 - 2 < 0), the risk-averse one is not (3 - 2)
    rows2 = [*rows, (SELL_TRADE, 45, 100, 2)]
    filled = {}
    for spec in ("risk_averse", "power:2"):
        m = market(rows2, queue=queue_model(spec))
        run_to(m, 2)
        m.submit(1, BUY, 100, 1, GTX)
        run_to(m, 60)
        filled[spec] = len(m.fills)
    assert filled == {"risk_averse": 0, "power:2": 1}


class _Q:
    def __init__(self) -> None:
        self.front = 0.0
        self.cum_trade = 0.0


@pytest.mark.parametrize("model", [RiskAverseQueue(), PowerProb(2), PowerProb(3), LogProb()])
def test_a_level_decrease_never_moves_us_back_and_never_beyond_the_level(model: QueueModel) -> None:
    q = _Q()
    model.new_order(q, 10)
    model.depth(q, 10, 30)  # 20 lots join behind
    model.depth(q, 30, 12)  # 18 cancelled somewhere
    assert 0 <= q.front <= 10
    assert q.front <= 12


def test_the_split_follows_the_probability_profile() -> None:
    # near the front (2 ahead, 8 behind) a power-2 split puts more of a decrease behind us than log does
    fronts = {}
    for name, model in {"risk": RiskAverseQueue(), "power2": PowerProb(2), "log": LogProb()}.items():
        q = _Q()
        model.new_order(q, 2)
        model.depth(q, 2, 10)
        model.depth(q, 10, 6)
        fronts[name] = q.front
    assert fronts["log"] < fronts["power2"] < fronts["risk"] == 2.0
    assert isinstance(PowerProb(2), ProbQueue)


def test_latency_delays_the_arrival_and_the_report_of_a_fill() -> None:
    # Arrange: a sell trade through 100 at 4 ms (before our order arrives at 2+5=7 ms), another at 30 ms
    rows = [*book(0, {100: 5}, {101: 3}), (SELL_TRADE, 4, 99, 9), (SELL_TRADE, 30, 99, 1)]
    m = market(rows, entry_ms=5, response_ms=8)
    run_to(m, 2)
    local = m.submit(1, BUY, 100, 1, GTX)
    # Act
    run_to(m, 37)
    # Assert: the 4 ms trade came too early; the 30 ms one filled us, and we learn it at 38 ms
    assert [(f.exch_ts, f.local_ts) for f in m.fills] == [(30 * MS, 38 * MS)]
    assert local.status == NEW and local.filled == 0
    run_to(m, 38)
    assert local.status == FILLED and local.filled == 1 and m.position == 1


def test_a_post_only_order_that_would_cross_is_rejected() -> None:
    m = market([*book(0, {100: 5}, {101: 3}), (BID, 50, 99, 1)])
    run_to(m, 2)
    local = m.submit(1, BUY, 101, 1, GTX)
    run_to(m, 20)
    assert local.status == EXPIRED and local.reason == "post_only"
    assert m.fills == []


def test_a_taker_order_walks_the_book_and_pays_the_taker_fee() -> None:
    # Arrange: asks 101x3, 102x2, 103x5; an IOC buy of 7 limited at 103
    rows = [*book(0, {100: 5}, {101: 3, 102: 2, 103: 5}), (BID, 50, 99, 1)]
    m = market(rows, fees=FeeSchedule(maker=-0.0001, taker=0.001))
    run_to(m, 2)
    m.submit(1, BUY, 103, 7, IOC)
    run_to(m, 30)
    # Assert: level by level at each level's price, taker fee on each
    assert [(f.px, f.qty, f.maker) for f in m.fills] == [(101, 3, False), (102, 2, False), (103, 2, False)]
    assert m.fees_paid == pytest.approx(0.001 * (101 * 3 + 102 * 2 + 103 * 2))
    assert m.position == 7


def test_an_ioc_remainder_beyond_its_limit_expires() -> None:
    m = market([*book(0, {100: 5}, {101: 3, 102: 2, 103: 5}), (BID, 50, 99, 1)])
    run_to(m, 2)
    local = m.submit(1, BUY, 102, 7, IOC)
    run_to(m, 30)
    assert sum(f.qty for f in m.fills) == 5
    assert local.status == EXPIRED and local.filled == 5


def test_maker_rebates_are_credited() -> None:
    # Arrange: negative maker fee; our ask at 101 is filled by a buy trade through it
    rows = [*book(0, {100: 5}, {101: 3}), (BUY_TRADE, 20, 102, 4)]
    m = market(rows, fees=FeeSchedule(maker=-0.0002, taker=0.0005))
    run_to(m, 2)
    m.submit(1, SELL, 101, 2, GTX)
    run_to(m, 40)
    # Assert: a maker fill, the rebate (negative fee) raises equity above the bare notional
    assert [(f.px, f.qty, f.maker) for f in m.fills] == [(101, 2, True)]
    assert m.fees_paid == pytest.approx(-0.0002 * 202)
    assert m.balance == pytest.approx(202.0)
    assert m.equity() == pytest.approx(202.0 - 2 * m.mid() + 0.0002 * 202)


def test_a_best_price_moving_through_a_resting_order_fills_it() -> None:
    rows = [*book(0, {100: 5}, {102: 3}), (ASK, 20, 100, 4)]
    m = market(rows)
    run_to(m, 2)
    m.submit(1, BUY, 100, 1, GTX)
    run_to(m, 40)
    assert [(f.px, f.exch_ts) for f in m.fills] == [(100, 20 * MS)]


def test_latency_replayed_from_the_feed_interpolates_between_rows() -> None:
    # Arrange: feed latency 2 ms at t=0 s, 6 ms from t=1 s on (one row per second)
    ets = np.array([0, 500 * MS, 1000 * MS, 1500 * MS, 2000 * MS], dtype=np.int64)
    lat = np.array([2 * MS, 2 * MS, 6 * MS, 6 * MS, 6 * MS], dtype=np.int64)
    table = OrderLatencyTable.from_feed(ets, lat, every_ns=1000 * MS)
    # Act / Assert: hftbacktest's rule: entry over request times, response over exchange times
    assert table.entry(-5) == 2 * MS  # before the table: its first row
    assert table.entry(250 * MS) == 3 * MS  # a quarter of the way from 2 ms to 6 ms
    assert table.entry(5000 * MS) == 6 * MS  # after the table: its last row
    assert table.response(2 * MS + 500 * MS) == pytest.approx(4 * MS, abs=10_000)
    assert table.min_entry_ns == 2 * MS
    feed_lat = FeedLatency(ets, lat, entry_multiplier=2.0, base_ns=MS)
    assert feed_lat.entry(750 * MS) == MS + 2 * 4 * MS


def test_a_market_with_replayed_latency_fills_after_the_round_trip() -> None:
    rows = [*book(0, {100: 5}, {101: 3}), (SELL_TRADE, 100, 99, 1)]
    m = market(rows)
    m.latency = OrderLatencyTable(np.array([0]), np.array([7 * MS]), np.array([7 * MS + 9 * MS]))
    run_to(m, 2)
    m.submit(1, BUY, 100, 1, GTX)
    run_to(m, 200)
    assert [(f.exch_ts, f.local_ts) for f in m.fills] == [(100 * MS, 109 * MS)]


def test_a_crossing_gtc_order_takes_what_it_can_and_rests_the_rest() -> None:
    m = market([*book(0, {100: 5}, {101: 3, 103: 5}), (SELL_TRADE, 50, 100, 9)])
    run_to(m, 2)
    local = m.submit(1, BUY, 102, 5, GTC)
    run_to(m, 30)
    # 3 taken at 101 (taker); the other 2 rest at 102 and are filled as maker by the sell trade below them
    assert [(f.px, f.qty, f.maker) for f in m.fills] == [(101, 3, False)]
    assert local.status == PARTIAL and local.filled == 3
    run_to(m, 80)
    assert [(f.px, f.qty, f.maker) for f in m.fills] == [(101, 3, False), (102, 2, True)]
    assert local.status == FILLED
