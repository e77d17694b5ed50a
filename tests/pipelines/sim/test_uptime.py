"""Quote uptime: what the exchange held of our quotes, over the replayed time, against hand-computed shares."""

from __future__ import annotations

import pytest

from pipelines.sim.feed import BID, SELL_TRADE
from pipelines.sim.market import BUY, FILLED, GTX, SELL
from pipelines.sim.report import records_from_market, summarize
from pipelines.sim.uptime import quote_uptime
from tests.pipelines.sim.helpers import MS, book, market, run_to


def test_uptime_of_a_small_replay_matches_the_hand_computed_shares() -> None:
    # Arrange: a two-sided book from 0 ms to the last row at 100 ms (the run's span: 100 ms); entry latency 5 ms.
    rows = [*book(0, {100: 5}, {102: 3}), (SELL_TRADE, 80, 99, 1), (BID, 100, 98, 1)]
    m = market(rows, entry_ms=5, response_ms=5)
    # Act: bid sent at 2 ms (rests 7 ms), ask at 12 ms (rests 17 ms), the bid cancelled at 42 ms (gone at
    # 47 ms), a new bid at 62 ms (rests 67 ms) filled in full by the sell trade through it at 80 ms.
    run_to(m, 2)
    m.submit(1, BUY, 100, 1, GTX)
    run_to(m, 12)
    m.submit(2, SELL, 102, 1, GTX)
    run_to(m, 42)
    assert m.cancel(1)
    run_to(m, 62)
    third = m.submit(3, BUY, 100, 1, GTX)
    run_to(m, 100)
    summary = summarize(records_from_market(m), bar_s=0.01)
    # Assert: bid [7, 47) + [67, 80) = 53 ms; ask [17, 100) = 83 ms; both [17, 47) + [67, 80) = 43 ms
    assert third.status == FILLED
    assert m.rest_log == [(7 * MS, BUY, 1), (17 * MS, SELL, 1), (47 * MS, BUY, -1), (67 * MS, BUY, 1),
                          (80 * MS, BUY, -1)]
    assert (summary["start_ns"], summary["bid_uptime"]) == (0, pytest.approx(0.53))
    assert summary["ask_uptime"] == pytest.approx(0.83)
    assert summary["quote_uptime"] == pytest.approx(0.43)


def test_orders_resting_before_the_start_count_from_it_and_later_changes_not_at_all() -> None:
    log = [(0, BUY, 1), (5, SELL, 1), (30, SELL, -1), (40, BUY, 1), (50, BUY, -1), (60, BUY, -1), (90, SELL, 1)]
    # window [10, 70): bid [10, 60) = 50 (two bids from 40 to 50 count once), ask [10, 30) = 20, both 20
    assert quote_uptime(log, 10, 70) == {"quote_uptime": pytest.approx(20 / 60), "bid_uptime": pytest.approx(50 / 60),
                                         "ask_uptime": pytest.approx(20 / 60)}


def test_a_post_only_reject_never_rests() -> None:
    m = market([*book(0, {100: 5}, {101: 3}), (BID, 50, 99, 1)])
    run_to(m, 2)
    m.submit(1, BUY, 101, 1, GTX)  # would cross: rejected on arrival
    run_to(m, 50)
    summary = summarize(records_from_market(m), bar_s=0.01)
    assert m.rest_log == []
    assert summary["bid_uptime"] == summary["quote_uptime"] == 0.0
