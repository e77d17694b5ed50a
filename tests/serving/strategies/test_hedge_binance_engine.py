"""The hedge (SPEC 13) end to end: Binance spot primary, Binance USD-M hedge, the real engine and ccxt.

Every scenario runs the hedge strategy inside the engine on the two live brokers (see
`tests.serving.strategies.binance_engine`), against the two local fakes; the venue does what the
scenario says (prints through the maker, partial fills, rejects, hangs) and the test checks what reached
each venue and both venues' own positions at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT
from tests.fakes.binance_spot_stream import BinanceSpotStream
from tests.fakes.binance_usdm_venue import FakeBinanceUsdm
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.strategies.binance_engine import SPOT_SYMBOL, BinanceHedge, start_hedge

pytestmark = pytest.mark.integration
Maker = Callable[..., BinanceHedge]


@pytest.fixture(params=["rest-poll", "websocket"])
def stream(request: pytest.FixtureRequest, spot: FakeTradingVenue) -> Iterator[BinanceSpotStream | None]:
    """Order updates by REST poll only, or on both venues' WebSockets (REST as the fallback)."""
    if request.param == "rest-poll":
        yield None
        return
    with BinanceSpotStream(spot) as s:
        yield s


@pytest.fixture
def make(
    tmp_path: Path, spot: FakeTradingVenue, usdm: FakeBinanceUsdm, stream: BinanceSpotStream | None
) -> Iterator[Maker]:
    started: list[BinanceHedge] = []

    def start(params: dict[str, Any] | None = None) -> BinanceHedge:
        started.append(start_hedge(tmp_path / "home", spot, usdm, params, stream=stream))
        return started[-1]

    yield start
    for h in started:
        h.close()


@pytest.fixture
def hedge(make: Maker) -> BinanceHedge:
    h = make()
    h.books()
    return h


def test_happy_path_post_only_fill_on_spot_ioc_hedge_on_usdm_net_zero(hedge: BinanceHedge) -> None:
    [maker] = hedge.spot_posts()
    assert maker["type"] == "LIMIT_MAKER" and maker["side"] == "BUY" and maker["price"] == "60000"
    size = maker["quantity"]

    hedge.spot.trade(SPOT_SYMBOL, "59999.99", size)
    hedge.until(lambda: hedge.usdm_posts())

    [ioc] = hedge.usdm_posts()
    assert (ioc["side"], ioc["timeInForce"], ioc["quantity"]) == ("SELL", "IOC", size)
    cycle_ended(hedge)
    record = filled_record(hedge)
    assert record.outcome == "clean" and record.net_after == 0
    assert hedge.spot_position() == Decimal(size) and hedge.perp_position() == -Decimal(size)
    assert hedge.venue_net == 0 and hedge.engine_net == 0


def maker_filled(hedge: BinanceHedge, qty: str | None = None) -> str:
    """A print through the resting maker on spot fills it (all of it by default); returns its size."""
    maker = hedge.spot_posts()[-1]
    hedge.spot.trade(SPOT_SYMBOL, "59999.99" if maker["side"] == "BUY" else "60000.02", qty or maker["quantity"])
    return maker["quantity"]


def filled_record(hedge: BinanceHedge) -> Any:
    """The last cycle that had a maker fill (a new cycle may already be quoting)."""
    return [r for r in hedge.records() if r.primary.trades][-1]


def cycle_ended(hedge: BinanceHedge, n: int = 1) -> None:
    hedge.until(lambda: len([r for r in hedge.records() if r.primary.trades]) >= n)


def test_partial_maker_fill_then_the_rest_each_fill_hedged_for_its_size(hedge: BinanceHedge) -> None:
    size = maker_filled(hedge, "0.001")
    hedge.until(lambda: hedge.usdm_posts())
    assert [p["quantity"] for p in hedge.usdm_posts()] == ["0.001"]
    assert hedge.strategy.cycle is not None  # the maker still works the rest
    maker_filled(hedge, str(Decimal(size) - Decimal("0.001")))
    cycle_ended(hedge)

    assert [p["quantity"] for p in hedge.usdm_posts()] == ["0.001", "0.001"]
    record = filled_record(hedge)
    assert record.outcome == "clean" and record.hedge_size == record.maker_size == Decimal(size)
    assert hedge.perp_position() == -Decimal(size) and hedge.venue_net == 0


def test_hedge_ioc_partially_filled_the_remainder_is_hedged_again(hedge: BinanceHedge) -> None:
    matcher = hedge.usdm.matcher
    matcher.ioc_fill_ratio = Decimal("0.5")  # the first IOC fills half, the rest expires

    def full_after_the_first_fill(kind: str, *_: object) -> None:
        if kind == "fill":
            matcher.ioc_fill_ratio = Decimal(1)

    matcher.listeners.append(full_after_the_first_fill)
    size = maker_filled(hedge)
    cycle_ended(hedge)

    first, second = hedge.usdm_posts()[:2]
    assert (first["quantity"], second["quantity"]) == (size, str(Decimal(size) / 2))
    assert filled_record(hedge).outcome == "clean" and hedge.venue_net == 0


def test_hedge_rejected_by_the_venue_then_the_maker_fill_is_unwound(make: Maker, usdm: FakeBinanceUsdm) -> None:
    hedge = make({"max_hedge_attempts": 2})
    hedge.books()
    usdm.matcher.reject_next = ["rejected", "rejected"]
    size = maker_filled(hedge)
    cycle_ended(hedge)

    assert len(hedge.usdm_posts()) == 2  # the bounded attempts, both refused (-2010)
    unwind = hedge.spot_posts()[1]
    assert (unwind["side"], unwind["timeInForce"], unwind["quantity"]) == ("SELL", "IOC", size)
    record = filled_record(hedge)
    assert record.outcome == "unwound" and record.unwind_size == Decimal(size) and record.hedge_size == 0
    assert hedge.spot_position() == 0 and hedge.perp_position() == 0


def test_hedge_lost_at_the_venue_times_out_and_is_sent_again(hedge: BinanceHedge) -> None:
    hedge.usdm.unknown_next(1, executed=False)  # -1007: the send's fate is unknown (never resent blindly)
    size = maker_filled(hedge)
    # The venue never had it (-2013 to every query): after the 5 s timeout its cancel is refused and the
    # engine ends it; the strategy sends the hedge again, within the band.
    hedge.until(lambda: len(hedge.usdm_posts()) >= 2, seconds=0.5, steps=40)
    cycle_ended(hedge)

    lost, again = hedge.usdm_posts()[:2]
    assert lost["newClientOrderId"] != again["newClientOrderId"]
    assert (again["side"], again["timeInForce"], again["quantity"]) == ("SELL", "IOC", size)
    record = filled_record(hedge)
    assert record.outcome == "clean" and record.hedge_attempts == 2 and record.net_after == 0
    assert hedge.perp_position() == -Decimal(size) and hedge.venue_net == 0  # hedged once
    [lost_order] = [
        s.order for s in hedge.engine.store.load_orders() if s.order.client_order_id == lost["newClientOrderId"]
    ]
    assert not lost_order.is_live  # the engine ended it too: the venue never had it


def test_hedge_answer_lost_but_executed_the_rest_poll_finds_the_fill_no_second_hedge(hedge: BinanceHedge) -> None:
    hedge.usdm.unknown_next(1, executed=True)  # the venue filled it; the answer said "status unknown"
    size = maker_filled(hedge)
    cycle_ended(hedge)

    assert len(hedge.usdm_posts()) == 1  # not resent: Binance would take a resent IOC as a new order
    assert filled_record(hedge).outcome == "clean"
    assert hedge.perp_position() == -Decimal(size) and hedge.venue_net == 0


def test_maker_fill_racing_the_cancel_is_hedged_exactly_once(make: Maker, spot: FakeTradingVenue) -> None:
    hedge = make({"maker_ttl_seconds": 1})
    hedge.books()
    if hedge.stream is not None:
        hedge.stream.drop_updates(1)  # the fill's execution report is lost ...
    else:
        spot.drop_next(2)  # ... or the poll of this tick (and its retry): the engine has not seen it
    size = maker_filled(hedge)  # filled at the venue
    hedge.advance(1.1)  # the TTL cancel goes out for an order that is already filled
    cancels = [p for m, path, p in spot.requests if m == "DELETE" and path == "/api/v3/order"]
    assert len(cancels) == 1
    cycle_ended(hedge)

    assert len(hedge.usdm_posts()) == 1 and hedge.usdm_posts()[0]["quantity"] == size
    assert filled_record(hedge).outcome == "clean" and hedge.venue_net == 0


def test_phase_goes_up_after_three_clean_cycles_the_next_maker_is_sized_for_it(hedge: BinanceHedge) -> None:
    for n in range(1, 4):
        maker_filled(hedge)
        cycle_ended(hedge, n)
    hedge.until(lambda: len(hedge.spot_posts()) >= 4)

    assert hedge.strategy.phase.index == 1  # phases 100, 200: up after 3 clean cycles
    # maker side auto: buy while the spot position is below one maker size (0.002 < 0.003), else sell
    assert [p["side"] for p in hedge.spot_posts()[:4]] == ["BUY", "SELL", "BUY", "BUY"]
    assert hedge.spot_posts()[3]["quantity"] == "0.003"  # $200 at 60,000 on the hedge venue's 0.001 lot
    assert "phase_change" in {a.kind for a in hedge.engine.store.alerts()}
    assert hedge.venue_net == 0 and hedge.perp_position() == -Decimal("0.002")  # long spot 0.002 hedged


def test_insufficient_hedge_balance_means_no_quote(tmp_path: Path, spot: FakeTradingVenue) -> None:
    with FakeBinanceUsdm(cash=Decimal(2)) as poor:
        hedge = start_hedge(tmp_path / "home", spot, poor)  # REST only: no order ever reaches a venue
        hedge.books()
        hedge.advance(0.1, 3)
        hedge.books()

        assert hedge.spot_posts() == [] and hedge.usdm_posts() == []
        reasons = [d.reason for d in hedge.engine.decisions if d.strategy_id == "hedge"]
        assert any("hedge venue balance" in r for r in reasons)


def test_orders_of_an_earlier_run_are_cancelled_by_the_clean_start_before_the_first_quote(
    make: Maker, spot: FakeTradingVenue, usdm: FakeBinanceUsdm
) -> None:
    old_spot = spot.place_foreign_order(SPOT_SYMBOL, "SELL", "61000.00", "0.001", "at-old-run-1")
    spot.set_balance("BTC", Decimal("0.001"))
    old_perp = usdm.matcher.place("BTCUSDT", "sell", Decimal("61000.0"), Decimal("0.001"), "gtc", True, "at-old-run-2")
    assert not isinstance(old_perp, str)

    hedge = make()
    assert spot.orders[old_spot].status == "CANCELED" and old_perp.status == "canceled"
    assert hedge.spot_posts() == []  # nothing quoted before the books
    hedge.books()
    [maker] = hedge.spot_posts()
    assert maker["type"] == "LIMIT_MAKER"
    assert [o.client_order_id for o in spot.open_orders()] == [maker["newClientOrderId"]]


def test_kill_between_the_maker_fill_and_the_hedge_the_restart_hedges_to_net_zero(make: Maker) -> None:
    first = make()
    first.books()
    size = maker_filled(first)  # filled at the venue; the process dies before its next poll
    del first  # kill -9: no shutdown, nothing more persisted; the store on disk is all that is left

    second = make()
    second.books()
    second.until(lambda: any(r.recovered for r in second.records()))

    [correct] = second.usdm_posts()
    assert (correct["side"], correct["timeInForce"], correct["quantity"]) == ("SELL", "IOC", size)
    [recovered] = [r for r in second.records() if r.recovered]
    assert recovered.net_after == 0 and recovered.hedge.size == Decimal(size)
    assert second.spot_position() == Decimal(size) and second.venue_net == 0


# ---- the WebSocket transport ------------------------------------------------------------------------
@pytest.fixture
def streamed(tmp_path: Path, spot: FakeTradingVenue, usdm: FakeBinanceUsdm) -> Iterator[BinanceHedge]:
    with BinanceSpotStream(spot) as stream:
        h = start_hedge(tmp_path / "home", spot, usdm, stream=stream)
        h.books()
        yield h
        h.close()


def rest_polls(hedge: BinanceHedge) -> int:
    return sum(1 for m, path, _ in hedge.spot.requests if m == "GET" and path in ("/api/v3/order", "/api/v3/myTrades"))


def test_the_maker_fill_arrives_on_the_websocket_and_is_hedged_before_any_rest_poll(streamed: BinanceHedge) -> None:
    polls = rest_polls(streamed)
    size = maker_filled(streamed)
    streamed.until(lambda: streamed.usdm_posts(), seconds=0.01, steps=100)  # well inside the 2 s sweep

    assert rest_polls(streamed) == polls  # the fill came from executionReport, not from myTrades
    assert streamed.usdm_posts()[0]["quantity"] == size
    cycle_ended(streamed)
    assert filled_record(streamed).outcome == "clean" and streamed.venue_net == 0


def test_websocket_update_lost_the_rest_poll_finds_the_fill_and_it_is_hedged_once(streamed: BinanceHedge) -> None:
    assert streamed.stream is not None
    streamed.stream.drop_updates(5)  # the maker's fill report never arrives
    size = maker_filled(streamed)
    streamed.advance(0.1, 5)
    assert streamed.usdm_posts() == []  # nothing seen yet
    streamed.until(lambda: streamed.usdm_posts(), steps=40)  # the 2 s REST sweep finds it

    cycle_ended(streamed)
    assert [p["quantity"] for p in streamed.usdm_posts()] == [size]
    assert filled_record(streamed).outcome == "clean" and streamed.venue_net == 0


def test_both_websockets_dropped_mid_cycle_the_streams_reconnect_and_the_cycle_ends_flat(
    streamed: BinanceHedge,
) -> None:
    assert streamed.stream is not None
    streamed.stream.drop_websockets()
    streamed.usdm.drop_websockets()
    size = maker_filled(streamed)  # while both streams are down
    cycle_ended(streamed)
    assert filled_record(streamed).outcome == "clean" and streamed.venue_net == 0

    streamed.wait_streams()  # both reconnected (ccxt re-subscribes: a new signed subscription on spot)
    polls = rest_polls(streamed)
    maker_filled(streamed)  # the next cycle's maker: its fill comes on the new spot stream
    cycle_ended(streamed, 2)
    assert rest_polls(streamed) - polls <= 1 and streamed.venue_net == 0
    assert streamed.perp_position() == 0 and streamed.spot_position() == 0 and Decimal(size) > 0


# ---- kill -9 of a real process -----------------------------------------------------------------------
DRIVER = "tests.serving.strategies.binance_crash_driver"


def test_sigkill_of_the_engine_process_after_the_maker_fill_the_restart_hedges_to_net_zero(
    tmp_path: Path, spot: FakeTradingVenue, usdm: FakeBinanceUsdm
) -> None:
    home = tmp_path / "home"
    spot.set_book(SPOT_SYMBOL, "60000.00", "60000.01")  # the venues' books, as the driver feeds them
    usdm.matcher.set_book("BTCUSDT", "60000.0", "60000.1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHATIDE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", DRIVER, str(home), spot.base_url, usdm.base_url],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "QUOTED", proc.stderr.read() if proc.stderr else ""
        spot.drop_next(10_000)  # the process goes blind on spot: it never sees the fill below
        [maker] = spot.open_orders()
        spot.trade(SPOT_SYMBOL, "59999.99", str(maker.orig_qty))
        time.sleep(0.5)  # it keeps running, blind, a few dozen ticks
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    size = maker.orig_qty
    assert usdm.matcher.orders == {} and spot.balance("BTC") == size  # filled, never hedged
    spot.drop_next(0)

    second = start_hedge(home, spot, usdm)
    second.books()
    second.until(lambda: any(r.recovered for r in second.records()))

    [correct] = second.usdm_posts()
    assert (correct["side"], correct["timeInForce"], Decimal(correct["quantity"])) == ("SELL", "IOC", size)
    [recovered] = [r for r in second.records() if r.recovered]
    assert recovered.net_after == 0
    assert second.perp_position() == -size and second.venue_net == 0
