"""The pure cycle state machine: every decision from values, no context, no clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pipelines.trading.hedge.config import HedgeConfig
from pipelines.trading.hedge.cycle import Cycle, LegFill, Role, Status
from pipelines.trading.hedge.machine import HedgeMachine, Place, Snapshot, Top
from pipelines.trading.hedge.phases import Outcome, PhaseState
from pipelines.trading.hedge.quote import plan_quote
from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.orders import OrderState

T0 = datetime(2026, 12, 1, tzinfo=UTC)
PRIMARY = MarketInfo(
    "SOL/USDC", "SOL_USDC", Decimal("0.01"), Decimal("0.01"), Decimal(0), Decimal("-0.0001"), Decimal("0.0004")
)
HEDGE = MarketInfo(
    "SOL/USDC:USDC", "5", Decimal("0.001"), Decimal("0.01"), Decimal(10), Decimal("0.00015"), Decimal("0.00045")
)
CFG = HedgeConfig(primary_symbol="SOL/USDC", hedge_symbol="SOL/USDC:USDC", phases=(Decimal(100),))


class Book:
    def __init__(self) -> None:
        self.p, self.h = Decimal(0), Decimal(0)

    def snap(self, now: datetime) -> Snapshot:
        return Snapshot(
            PRIMARY,
            HEDGE,
            Top(Decimal("150.00"), Decimal("150.01"), now),
            Top(Decimal("150.000"), Decimal("150.010"), now),
            self.p,
            self.h,
        )


def opened(book: Book) -> tuple[HedgeMachine, Cycle]:
    decision = plan_quote(CFG, "c1", PhaseState(), book.snap(T0), Decimal(1000), T0)
    assert decision.cycle is not None and decision.action is not None
    machine = HedgeMachine(CFG)
    machine.placed(decision.cycle, decision.action, "m1", decision.action.size, T0)
    return machine, decision.cycle


def test_quote_is_post_only_at_the_best_bid_sized_from_the_phase() -> None:
    decision = plan_quote(CFG, "c1", PhaseState(), Book().snap(T0), Decimal(1000), T0)
    assert decision.action == Place(Role.MAKER, "primary", Side.BUY, Decimal("150.00"), Decimal("0.66"), True, 1)


def test_quote_refuses_a_stale_book_and_a_short_hedge_balance() -> None:
    assert plan_quote(CFG, "c", PhaseState(), Book().snap(T0), Decimal(1000), T0 + timedelta(seconds=10)).cycle is None
    short = plan_quote(CFG, "c", PhaseState(), Book().snap(T0), Decimal(90), T0)
    assert short.cycle is None and "balance" in short.reason


def test_a_terminal_update_ahead_of_its_fill_events_is_never_hedged_twice() -> None:
    book = Book()
    machine, cycle = opened(book)
    book.p += Decimal("0.66")
    [hedge] = machine.on_fill(
        cycle, "m1", LegFill("f1", Decimal("0.66"), Decimal(150), Decimal(0), T0), book.snap(T0), T0
    )
    assert isinstance(hedge, Place) and hedge.size == Decimal("0.66")
    machine.placed(cycle, hedge, "h1", hedge.size, T0)
    # the venue's update says "expired, 0.40 filled" before the fill event of those 0.40 arrives
    retry = machine.on_update(cycle, "h1", OrderState.EXPIRED, Decimal("0.40"), book.snap(T0), T0)
    assert [a.size for a in retry if isinstance(a, Place)] == [Decimal("0.26")]  # only the unfilled rest


def test_cycle_round_trips_through_json_mid_cycle_and_continues_identically() -> None:
    book = Book()
    machine, cycle = opened(book)
    book.p += Decimal("0.30")
    [hedge] = machine.on_fill(
        cycle, "m1", LegFill("f1", Decimal("0.30"), Decimal(150), Decimal("-0.0045"), T0), book.snap(T0), T0
    )
    assert isinstance(hedge, Place)
    machine.placed(cycle, hedge, "h1", hedge.size, T0)
    copy = Cycle.from_dict(json.loads(json.dumps(cycle.to_dict())))
    assert copy.to_dict() == cycle.to_dict() and copy.exposure == Decimal("0.30")
    book.h -= Decimal("0.30")
    for c in (cycle, copy):
        machine.on_fill(
            c, "h1", LegFill("g1", Decimal("0.30"), Decimal("149.7"), Decimal("0.02"), T0), book.snap(T0), T0
        )
        machine.on_update(c, "m1", OrderState.CANCELLED, Decimal("0.30"), book.snap(T0), T0)
    assert copy.to_dict() == cycle.to_dict()
    assert cycle.status is Status.DONE and cycle.outcome is Outcome.CLEAN and cycle.net_after == 0


def test_recover_closes_a_cycle_whose_net_is_already_zero() -> None:
    book = Book()
    machine, cycle = opened(book)
    book.p, book.h = Decimal("0.66"), Decimal("-0.66")  # both legs filled, the process died before hearing it
    assert machine.recover(cycle, book.snap(T0), T0) == []
    assert cycle.status is Status.DONE and cycle.recovered and cycle.net_after == 0
