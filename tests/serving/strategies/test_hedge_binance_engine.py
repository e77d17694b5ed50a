"""The hedge (SPEC 13) end to end: Binance spot primary, Binance USD-M hedge, the real engine and ccxt.

Every scenario runs the hedge strategy inside the engine on the two live brokers (see
`tests.serving.strategies.binance_engine`), against the two local fakes; the venue does what the
scenario says (prints through the maker, partial fills, rejects, hangs) and the test checks what reached
each venue and both venues' own positions at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.binance_usdm_venue import FakeBinanceUsdm
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.strategies.binance_engine import SPOT_SYMBOL, BinanceHedge, start_hedge

pytestmark = pytest.mark.integration


@pytest.fixture
def spot() -> Iterator[FakeTradingVenue]:
    with FakeTradingVenue({"BTCUSDT": ("BTC", "USDT")}, {"USDT": Decimal(10_000)}) as venue:
        yield venue


@pytest.fixture
def usdm() -> Iterator[FakeBinanceUsdm]:
    with FakeBinanceUsdm() as venue:
        yield venue


@pytest.fixture
def hedge(tmp_path: Path, spot: FakeTradingVenue, usdm: FakeBinanceUsdm) -> BinanceHedge:
    h = start_hedge(tmp_path / "home", spot, usdm)
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


def test_hedge_rejected_by_the_venue_then_the_maker_fill_is_unwound(
    tmp_path: Path, spot: FakeTradingVenue, usdm: FakeBinanceUsdm
) -> None:
    hedge = start_hedge(tmp_path / "home", spot, usdm, {"max_hedge_attempts": 2})
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
    hedge.usdm.unknown_next(2, executed=False)  # -1007 to the send and to the broker's one retry
    size = maker_filled(hedge)
    # The venue never had it (-2013 to every query): after the 5 s timeout its cancel is refused and the
    # engine ends it; the strategy sends the hedge again, within the band.
    hedge.until(lambda: len(hedge.usdm_posts()) >= 3, seconds=0.5, steps=40)
    cycle_ended(hedge)

    lost, retried, again = hedge.usdm_posts()[:3]
    assert lost["newClientOrderId"] == retried["newClientOrderId"] != again["newClientOrderId"]
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

    assert len({p["newClientOrderId"] for p in hedge.usdm_posts()}) == 1
    assert filled_record(hedge).outcome == "clean"
    assert hedge.perp_position() == -Decimal(size) and hedge.venue_net == 0


def test_maker_fill_racing_the_cancel_is_hedged_exactly_once(
    tmp_path: Path, spot: FakeTradingVenue, usdm: FakeBinanceUsdm
) -> None:
    hedge = start_hedge(tmp_path / "home", spot, usdm, {"maker_ttl_seconds": 1})
    hedge.books()
    size = maker_filled(hedge)  # filled at the venue ...
    spot.drop_next(2)  # ... but the poll of this tick (and its retry) is lost: the engine has not seen it
    hedge.advance(1.1)  # the TTL cancel goes out for an order that is already filled
    cancels = [p for m, path, p in spot.requests if m == "DELETE" and path == "/api/v3/order"]
    assert len(cancels) == 1
    cycle_ended(hedge)

    assert len(hedge.usdm_posts()) == 1 and hedge.usdm_posts()[0]["quantity"] == size
    assert filled_record(hedge).outcome == "clean" and hedge.venue_net == 0


def test_insufficient_hedge_balance_means_no_quote(tmp_path: Path, spot: FakeTradingVenue) -> None:
    with FakeBinanceUsdm(cash=Decimal(2)) as poor:
        hedge = start_hedge(tmp_path / "home", spot, poor)
        hedge.books()
        hedge.advance(0.1, 3)
        hedge.books()

        assert hedge.spot_posts() == [] and hedge.usdm_posts() == []
        reasons = [d.reason for d in hedge.engine.decisions if d.strategy_id == "hedge"]
        assert any("hedge venue balance" in r for r in reasons)


def test_orders_of_an_earlier_run_are_cancelled_by_the_clean_start_before_the_first_quote(
    tmp_path: Path, spot: FakeTradingVenue, usdm: FakeBinanceUsdm
) -> None:
    old_spot = spot.place_foreign_order(SPOT_SYMBOL, "SELL", "61000.00", "0.001", "at-old-run-1")
    spot.set_balance("BTC", Decimal("0.001"))
    old_perp = usdm.matcher.place("BTCUSDT", "sell", Decimal("61000.0"), Decimal("0.001"), "gtc", True, "at-old-run-2")
    assert not isinstance(old_perp, str)

    hedge = start_hedge(tmp_path / "home", spot, usdm)
    assert spot.orders[old_spot].status == "CANCELED" and old_perp.status == "canceled"
    assert hedge.spot_posts() == []  # nothing quoted before the books
    hedge.books()
    [maker] = hedge.spot_posts()
    assert maker["type"] == "LIMIT_MAKER"
    assert [o.client_order_id for o in spot.open_orders()] == [maker["newClientOrderId"]]


def test_kill_between_the_maker_fill_and_the_hedge_the_restart_hedges_to_net_zero(
    tmp_path: Path, spot: FakeTradingVenue, usdm: FakeBinanceUsdm
) -> None:
    first = start_hedge(tmp_path / "home", spot, usdm)
    first.books()
    size = maker_filled(first)  # filled at the venue; the process dies before its next poll
    del first  # kill -9: no shutdown, nothing more persisted; the store on disk is all that is left

    second = start_hedge(tmp_path / "home", spot, usdm)
    second.books()
    second.until(lambda: any(r.recovered for r in second.records()))

    [correct] = second.usdm_posts()
    assert (correct["side"], correct["timeInForce"], correct["quantity"]) == ("SELL", "IOC", size)
    [recovered] = [r for r in second.records() if r.recovered]
    assert recovered.net_after == 0 and recovered.hedge.size == Decimal(size)
    assert second.spot_position() == Decimal(size) and second.venue_net == 0
