"""Scenario tests of the two-venue hedge strategy (SPEC 13) through its Strategy interface."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from prometheus_client import REGISTRY

from pipelines.trading.hedge.phases import Outcome
from pipelines.trading.instruments import Side
from pipelines.trading.orders import OrderState
from serving.engine.strategy import ExecutionStyle, OrderIntent, Strategy, TimeInForce
from tests.serving.strategies.hedge_harness import Harness

SIZE = Decimal("0.00019")  # $10 phase at 60,000 raised to the hedge venue's $10 minimum + 10%


def started(**cfg: object) -> Harness:
    h = Harness(cfg).start()
    h.set_books()
    return h


def test_the_strategy_implements_the_engine_protocol() -> None:
    assert isinstance(Harness().strategy, Strategy)


def test_happy_path_maker_fill_is_hedged_at_once_and_the_net_verified_zero() -> None:
    h = started()
    [maker] = h.ctx.sent
    assert maker.intent.venue == "primary" and maker.intent.symbol == "BTC/USDC"
    assert (maker.intent.side, maker.intent.price, maker.intent.size) == (Side.BUY, Decimal("60000.0"), SIZE)
    assert maker.intent.post_only and maker.intent.style is ExecutionStyle.LIMIT

    h.fill(maker.order_id, SIZE)

    [hedge] = h.orders("hedge")
    assert hedge.intent.venue == "hedge" and hedge.intent.symbol == "BTC/USDC:USDC"
    assert hedge.intent.side is Side.SELL and hedge.intent.size == SIZE
    assert hedge.intent.time_in_force is TimeInForce.IOC and not hedge.intent.post_only and hedge.intent.is_exit
    assert hedge.intent.price == Decimal("59880")  # bid 60,000 x (1 - 0.2%), on the hedge venue's tick of 1
    h.fill_ioc(hedge.order_id)

    assert h.net == 0 and h.strategy.cycle is None
    [record] = h.strategy.records
    assert record.outcome == Outcome.CLEAN.value and record.net_after == 0
    assert record.maker_size == record.hedge_size == SIZE
    assert record.spread_cost_bps is not None and round(record.spread_cost_bps, 2) == 20.0  # 60000 vs 59880
    assert record.maker_fee < 0 and record.primary.rebates > 0 and record.hedge_fee > 0
    assert record.fill_to_hedge_ms == 0.0
    assert h.strategy.phase.clean_streak == 1


def test_partial_maker_fill_then_full_each_fill_hedged_for_its_size() -> None:
    h = started(phases=["100", "200"])
    [maker] = h.ctx.sent
    assert maker.intent.size == Decimal("0.00166")

    h.fill(maker.order_id, "0.001")
    [first] = h.orders("hedge")
    assert first.intent.size == Decimal("0.001")
    h.fill_ioc(first.order_id)
    assert h.strategy.cycle is not None  # the maker is still working
    h.fill(maker.order_id, "0.00066")
    second = h.orders("hedge")[1]
    assert second.intent.size == Decimal("0.00066")
    h.fill_ioc(second.order_id)

    assert h.net == 0
    [record] = h.strategy.records
    assert record.outcome == "clean" and record.hedge_size == record.maker_size == Decimal("0.00166")
    assert record.hedge.trades == 2 and record.primary.trades == 2


def test_small_partial_fill_below_the_hedge_minimum_waits_then_the_rest_is_unwound() -> None:
    h = started()
    [maker] = h.ctx.sent
    h.fill(maker.order_id, "0.00005")  # $3: below the hedge venue's $10 minimum
    assert h.orders("hedge") == []
    h.update(maker.order_id, OrderState.CANCELLED)  # the maker ends: the residual cannot be hedged
    [unwind] = h.orders("unwind")
    assert unwind.intent.venue == "primary" and unwind.intent.side is Side.SELL
    assert unwind.intent.size == Decimal("0.00005") and unwind.intent.time_in_force is TimeInForce.IOC
    h.fill_ioc(unwind.order_id)
    assert h.net == 0 and h.strategy.records[-1].outcome == "unwound"


def test_hedge_rejected_then_unwound_after_the_bounded_attempts() -> None:
    h = started(max_hedge_attempts=2)
    [maker] = h.ctx.sent
    h.fill(maker.order_id, SIZE)
    for attempt in range(2):
        hedge = h.orders("hedge")[attempt]
        assert hedge.intent.size == SIZE
        h.update(hedge.order_id, OrderState.REJECTED, "Order could not immediately match")
    assert len(h.orders("hedge")) == 2  # no third attempt
    [unwind] = h.orders("unwind")
    assert (unwind.intent.venue, unwind.intent.side, unwind.intent.size) == ("primary", Side.SELL, SIZE)
    assert unwind.intent.price == Decimal("59700.0")  # bid 60,000 x (1 - 0.5%), primary tick 0.1
    h.fill_ioc(unwind.order_id)

    assert h.net == 0 and h.ctx.positions == {"primary": 0, "hedge": 0}
    record = h.strategy.records[-1]
    assert record.outcome == "unwound" and record.unwind_size == SIZE and record.hedge_size == 0
    assert h.strategy.phase.failure_streak == 1


def test_false_insufficient_balance_reject_is_retried_and_the_legs_end_equal() -> None:
    h = started()
    [maker] = h.ctx.sent
    h.fill(maker.order_id, SIZE)
    first = h.orders("hedge")[0]
    h.update(first.order_id, OrderState.REJECTED, "Insufficient margin to place order.")
    retry = h.orders("hedge")[1]
    assert retry.intent.size == SIZE
    h.fill_ioc(retry.order_id)
    assert h.net == 0 and h.strategy.records[-1].outcome == "clean"


def test_hedge_refused_by_risk_counts_as_an_attempt_and_is_retried() -> None:
    h = started()
    h.ctx.refuse_next = ["risk: venue error rate"]
    [maker] = h.ctx.sent
    h.fill(maker.order_id, SIZE)
    [hedge] = h.orders("hedge")  # the refused one never reached the venue; this is the retry
    h.fill_ioc(hedge.order_id)
    assert h.net == 0 and h.strategy.records[-1].hedge_attempts == 2


def test_hedge_timeout_cancels_then_retries_within_the_band() -> None:
    h = started()
    [maker] = h.ctx.sent
    h.fill(maker.order_id, SIZE)
    [hedge] = h.orders("hedge")
    h.advance(4.9)
    assert h.ctx.cancels == []
    h.advance(0.2)  # past the 5 s hedge timeout
    assert h.ctx.cancels[-1] == (hedge.order_id, "hedge timeout")
    h.update(hedge.order_id, OrderState.CANCELLED)
    retry = h.orders("hedge")[1]
    assert retry.intent.size == SIZE and retry.intent.price == Decimal("59880")
    h.fill_ioc(retry.order_id)
    assert h.net == 0 and h.strategy.records[-1].outcome == "clean"


def test_hedge_never_answered_is_resolved_from_positions_not_resent_blindly() -> None:
    h = started()
    [maker] = h.ctx.sent
    h.fill(maker.order_id, SIZE)
    [_hedge] = h.orders("hedge")
    h.advance(5.1)  # timeout: cancel requested
    h.advance(5.1)  # no answer to the cancel either: lost, its fate comes from positions
    assert ("hedge_order_lost" in {k for k, _ in h.ctx.alerts}) and len(h.orders("hedge")) == 1
    h.advance(3.1)  # verify timeout: positions say net +SIZE, a correction goes to the hedge venue
    [correct] = h.orders("correct")
    assert (correct.intent.venue, correct.intent.side, correct.intent.size) == ("hedge", Side.SELL, SIZE)
    h.fill_ioc(correct.order_id)
    assert h.net == 0 and h.strategy.cycle is None


def test_maker_fill_after_the_cancel_request_is_hedged_exactly_once() -> None:
    h = started(maker_ttl_seconds=10)
    [maker] = h.ctx.sent
    h.advance(10.1)
    assert h.ctx.cancels == [(maker.order_id, "maker time to live")]
    h.fill(maker.order_id, SIZE, fill_id="t-77")  # the fill raced the cancel
    h.fill(maker.order_id, SIZE, fill_id="t-77")  # and the REST poll reports it again
    [hedge] = h.orders("hedge")
    assert hedge.intent.size == SIZE
    h.update(maker.order_id, OrderState.FILLED)  # the venue refuses the cancel: it was filled
    h.fill_ioc(hedge.order_id)
    assert h.net == 0 and len(h.orders("hedge")) == 1 and h.strategy.records[-1].outcome == "clean"


def test_no_new_maker_order_while_a_hedge_is_pending() -> None:
    h = started()
    [maker] = h.ctx.sent
    h.fill(maker.order_id, SIZE)
    for _ in range(4):
        h.set_books()
        h.advance(1)
    assert len(h.orders("maker")) == 1 and h.strategy.cycle is not None


def test_websocket_update_lost_the_rest_poll_fill_arrives_later_and_is_hedged_once() -> None:
    h = started()
    [maker] = h.ctx.sent
    h.advance(2)  # the venue filled the maker, but its WebSocket update never came
    h.fill(maker.order_id, SIZE, fill_id="poll-1")  # found by the REST poll
    h.fill(maker.order_id, SIZE, fill_id="poll-1")  # and by the next poll
    [hedge] = h.orders("hedge")
    h.fill_ioc(hedge.order_id)
    assert h.net == 0 and len(h.orders("hedge")) == 1


def test_kill_between_the_maker_fill_and_the_hedge_restart_hedges_to_net_zero() -> None:
    h = started()
    [_maker] = h.ctx.sent
    h.ctx.positions["primary"] += SIZE  # the venue filled the maker; the process died before seeing it

    h2 = h.restart()
    h2.set_books()
    [correct] = h2.orders("correct")
    assert (correct.intent.venue, correct.intent.side, correct.intent.size) == ("hedge", Side.SELL, SIZE)
    h2.fill_ioc(correct.order_id)
    assert h2.net == 0 and h2.strategy.cycle is None
    assert h2.strategy.records[-1].recovered and h2.strategy.records[-1].net_after == 0
    h2.advance(1)  # and only then a new cycle
    assert len(h2.orders("maker")) == 1


def test_kill_after_the_hedge_was_sent_restart_reads_the_positions() -> None:
    h = started()
    [maker] = h.ctx.sent
    h.fill(maker.order_id, SIZE)
    [_hedge] = h.orders("hedge")
    h.ctx.positions["hedge"] -= SIZE  # the hedge filled at the venue; the answer died with the process

    h2 = h.restart()
    h2.set_books()
    assert h2.orders("correct") == [] and h2.strategy.cycle is None  # net already zero: nothing to send
    assert h2.net == 0 and h2.strategy.records[-1].outcome == "clean"


def test_insufficient_hedge_balance_means_no_quote() -> None:
    h = Harness().start()
    h.ctx.balances["hedge"] = Decimal(5)
    h.set_books()
    assert h.ctx.sent == []
    assert any("hedge venue balance" in reason for _, reason in h.ctx.decisions)


def test_no_quote_while_the_spread_cost_exceeds_the_rebate() -> None:
    h = Harness().start()
    h.set_books(primary=("60000.0", "60000.1"), hedge=("59980", "59981"))  # 3.3 bps cost > 2 bps rebate
    assert h.ctx.sent == []
    assert any("edge" in reason for _, reason in h.ctx.decisions)


def test_phase_goes_up_after_three_clean_cycles_and_down_after_two_failures() -> None:
    h = started(phases=["10", "20", "50"], max_hedge_attempts=1, cooldown_seconds=0)
    for _ in range(3):
        run_clean_cycle(h)
    assert h.strategy.phase.index == 1 and ("phase_change" in {k for k, _ in h.ctx.alerts})
    assert [m.intent.side for m in h.orders("maker")] == [Side.BUY, Side.SELL, Side.BUY]  # auto: no inventory needed
    h.advance(1)
    assert h.orders("maker")[-1].intent.size == Decimal("0.00033")  # $20 at 60,000
    h.update(h.orders("maker")[-1].order_id, OrderState.CANCELLED)  # no fill: neutral for the phase
    assert h.strategy.phase.index == 1 and h.strategy.records[-1].outcome == "no_fill"
    for _ in range(2):
        run_unwound_cycle(h)
    assert h.strategy.phase.index == 0
    assert sum(1 for k, _ in h.ctx.alerts if k == "phase_change") == 2


def test_phase_and_counters_survive_a_restart() -> None:
    h = started(cooldown_seconds=0)
    run_clean_cycle(h)
    run_clean_cycle(h)
    h2 = h.restart()
    assert h2.strategy.phase.clean_streak == 2


def test_a_fill_after_its_cycle_closed_is_alerted_and_corrected_before_the_next_quote() -> None:
    h = started(cooldown_seconds=0)
    maker = run_clean_cycle(h)
    h.fill(maker, "0.00002", price="60000.0", fill_id="late-1")  # a second, late execution
    assert "hedge_late_fill" in {k for k, _ in h.ctx.alerts}
    h.advance(0.1)
    h.advance(3.1)
    [correct] = h.orders("correct")
    assert correct.intent.side is Side.SELL
    # 0.00002 is below the hedge venue's $10 minimum: the correction goes back to the primary venue
    assert correct.intent.venue == "primary" and correct.intent.size == Decimal("0.00002")
    h.fill_ioc(correct.order_id)
    assert h.net == 0


def run_clean_cycle(h: Harness) -> str:
    h.advance(1)
    maker = h.orders("maker")[-1]
    h.fill(maker.order_id, maker.intent.size)
    h.fill_ioc(h.orders("hedge")[-1].order_id)
    assert h.strategy.cycle is None and h.strategy.records[-1].outcome == "clean"
    return maker.order_id


def run_unwound_cycle(h: Harness) -> None:
    h.advance(1)
    maker = h.orders("maker")[-1]
    h.fill(maker.order_id, maker.intent.size)
    h.update(h.orders("hedge")[-1].order_id, OrderState.REJECTED)
    h.fill_ioc(h.orders("unwind")[-1].order_id)
    assert h.strategy.records[-1].outcome == "unwound"


def test_an_order_of_an_earlier_run_blocks_quoting_until_it_is_gone() -> None:
    h = Harness().start()
    h.ctx.submit(OrderIntent("BTC/USDC", Side.SELL, Decimal("0.01"), Decimal("61000.0"), venue="primary"))
    h.set_books()
    assert len(h.ctx.sent) == 1 and any("open order" in r for _, r in h.ctx.decisions)
    h.ctx.sent[0].state = OrderState.CANCELLED  # the clean start / sweep cancelled it
    h.advance(0.1)
    assert len(h.orders("maker")) == 1


def test_a_finished_cycle_is_exported_as_prometheus_metrics() -> None:
    before = REGISTRY.get_sample_value("alphatide_hedge_cycles_total", {"strategy": "hedge-1", "outcome": "clean"}) or 0
    h = started()
    run_clean_cycle_now(h)
    after = REGISTRY.get_sample_value("alphatide_hedge_cycles_total", {"strategy": "hedge-1", "outcome": "clean"})
    assert after == before + 1
    assert REGISTRY.get_sample_value("alphatide_hedge_imbalance_base", {"strategy": "hedge-1"}) == 0
    assert REGISTRY.get_sample_value("alphatide_hedge_phase_notional", {"strategy": "hedge-1"}) == 10


def run_clean_cycle_now(h: Harness) -> None:
    maker = h.orders("maker")[-1]
    h.fill(maker.order_id, maker.intent.size)
    h.fill_ioc(h.orders("hedge")[-1].order_id)


def test_a_fee_taken_in_the_base_asset_leaves_dust_that_is_alerted_not_halted() -> None:
    h = started(cooldown_seconds=0)
    h.ctx.infos["primary"] = replace(h.ctx.infos["primary"], lot_size=Decimal("0.00001"))
    maker = h.orders("maker")[-1]
    h.ctx.positions["primary"] -= Decimal("0.000000019")  # the venue kept 0.01% of the bought BTC as its fee
    h.fill(maker.order_id, SIZE)
    h.fill_ioc(h.orders("hedge")[-1].order_id)
    record = h.strategy.records[-1]
    assert record.outcome == "clean" and record.net_after == Decimal("-0.000000019")
    assert "hedge_dust" in {k for k, _ in h.ctx.alerts} and not h.strategy.halted
    h.advance(1)
    assert len(h.orders("maker")) == 2 and h.orders("correct") == []  # dust is not "corrected" forever


def test_an_unanswered_maker_cancel_is_repeated_not_forgotten() -> None:
    h = started(maker_ttl_seconds=10)
    [maker] = h.ctx.sent
    h.advance(10.1)
    h.advance(5.1)  # no cancel confirmation within the hedge timeout: ask again
    assert [c for c in h.ctx.cancels if c[0] == maker.order_id] == [
        (maker.order_id, "maker time to live"),
        (maker.order_id, "cancel unanswered, repeated"),
    ]
    h.update(maker.order_id, OrderState.CANCELLED)
    assert h.strategy.cycle is None and h.strategy.records[-1].outcome == "no_fill"
