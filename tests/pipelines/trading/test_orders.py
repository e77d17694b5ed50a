"""Order lifecycle and the working-order policy (SPEC 11), scenario by scenario (client order ids:
test_order_ids.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.trading.config import OrderConfig
from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.orders import (
    Accepted,
    BookTop,
    Cancelled,
    CancelOrder,
    CancelRefused,
    ClientOrderIdFactory,
    Expired,
    Fill,
    Filled,
    FillError,
    IllegalTransitionError,
    Liquidity,
    Order,
    OrderKind,
    OrderManager,
    OrderState,
    PlaceOrder,
    Rejected,
    WorkingOrder,
    WorkStatus,
    count_zombies,
)

D = Decimal
T0 = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
CFG = OrderConfig()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def market() -> MarketInfo:
    return MarketInfo("ETH/USDT", "ETHUSDT", D("0.01"), D("0.001"), D("5"), D("0.001"), D("0.001"))


def book(bid: str = "3000.00", ask: str = "3000.10", ts: datetime = T0, size: str = "50") -> BookTop:
    return BookTop(D(bid), D(ask), D(size), D(size), ts)


class Clock:
    """A settable clock for the id factory (tests move it by hand)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def manager(cfg: OrderConfig = CFG) -> tuple[OrderManager, Clock]:
    clock = Clock(T0)
    return OrderManager(cfg, ClientOrderIdFactory(clock)), clock


def new_order(size: str = "1.0", kind: OrderKind = OrderKind.POST_ONLY) -> Order:
    return Order("at-test", "ETH/USDT", Side.BUY, kind, D("3000.00"), D(size), T0)


def fill(fill_id: str, size: str, price: str = "3000.00", seconds: float = 1.0) -> Fill:
    qty, px = D(size), D(price)
    return Fill(fill_id, qty, px, qty * px * D("0.001"), Liquidity.MAKER, at(seconds))


def only(actions: list[PlaceOrder | CancelOrder]) -> PlaceOrder | CancelOrder:
    assert len(actions) == 1, actions
    return actions[0]


def placed(actions: list[PlaceOrder | CancelOrder]) -> Order:
    action = only(actions)
    assert isinstance(action, PlaceOrder)
    return action.order


# ---- lifecycle ----------------------------------------------------------------------------------------
def test_happy_path_new_open_partially_filled_filled() -> None:
    # Arrange
    order = new_order()

    # Act
    order.acknowledge(at(0.1), "v1")
    order.apply_fill(fill("f1", "0.4", "3000.00"))
    state_after_first = order.state
    order.apply_fill(fill("f2", "0.6", "2999.90"))

    # Assert
    assert state_after_first is OrderState.PARTIALLY_FILLED
    assert order.state is OrderState.FILLED
    assert order.filled == D("1.0")
    assert order.average_price == (D("0.4") * D("3000.00") + D("0.6") * D("2999.90")) / D("1.0")
    assert order.fees == D("0.4") * D("3000.00") * D("0.001") + D("0.6") * D("2999.90") * D("0.001")
    assert [t.target for t in order.history] == [
        OrderState.OPEN,
        OrderState.PARTIALLY_FILLED,
        OrderState.FILLED,
    ]


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([OrderState.OPEN, OrderState.FILLED], OrderState.OPEN),
        ([OrderState.OPEN, OrderState.CANCEL_REQUESTED, OrderState.CANCELLED], OrderState.OPEN),
        ([OrderState.REJECTED], OrderState.CANCEL_REQUESTED),
        ([OrderState.OPEN], OrderState.REJECTED),
        ([OrderState.OPEN], OrderState.NEW),
        ([OrderState.EXPIRED], OrderState.FILLED),
    ],
)
def test_illegal_transition_raises_a_clear_error(path: list[OrderState], illegal: OrderState) -> None:
    order = new_order()
    for state in path:
        order.transition(state, at(1))

    with pytest.raises(IllegalTransitionError, match=rf"{path[-1].value} -> {illegal.value} is not allowed"):
        order.transition(illegal, at(2))


def test_duplicate_fill_report_is_ignored() -> None:
    order = new_order()
    order.acknowledge(at(0.1))

    first = order.apply_fill(fill("f1", "0.5"))
    again = order.apply_fill(fill("f1", "0.5"))

    assert (first, again) == (True, False)
    assert order.filled == D("0.5")


def test_overfill_raises() -> None:
    order = new_order()
    order.apply_fill(fill("f1", "0.7"))

    with pytest.raises(FillError, match="overfills"):
        order.apply_fill(fill("f2", "0.4"))


def test_fill_racing_a_cancel_completes_the_order() -> None:
    order = new_order()
    order.acknowledge(at(0.1))
    order.request_cancel(at(1))

    order.apply_fill(fill("f1", "1.0", seconds=1.1))

    assert order.state is OrderState.FILLED


def test_late_fill_after_cancel_is_recorded_not_dropped() -> None:
    order = new_order()
    order.acknowledge(at(0.1))
    order.request_cancel(at(1))
    order.confirm_cancelled(at(1.2))

    order.apply_fill(fill("f1", "0.3", seconds=0.9))

    assert order.state is OrderState.CANCELLED
    assert order.filled == D("0.3")
    assert order.late_fill


def test_refused_cancel_returns_to_the_working_state() -> None:
    order = new_order()
    order.acknowledge(at(0.1))
    order.apply_fill(fill("f1", "0.2"))
    order.request_cancel(at(2))

    order.cancel_refused(at(2.1), "venue busy")

    assert order.state is OrderState.PARTIALLY_FILLED


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=12))
def test_property_fills_accumulate_exactly_and_never_exceed_size(parts: list[int]) -> None:
    lots = [D(p) * D("0.001") for p in parts]
    order = Order("at-p", "ETH/USDT", Side.BUY, OrderKind.POST_ONLY, D("3000"), sum(lots, D(0)), T0)

    for i, qty in enumerate(lots):
        order.apply_fill(Fill(f"f{i}", qty, D("3000") - i, D(0), Liquidity.MAKER, at(i)))

    assert order.filled == order.size
    assert order.state is OrderState.FILLED
    assert order.average_price is not None
    assert D("3000") - len(lots) < order.average_price <= D("3000")


# ---- working-order policy --------------------------------------------------------------------------------
def start_buy(
    size: str = "1.000", *, allow_taker: bool = True, ack: bool = True
) -> tuple[OrderManager, WorkingOrder, Order]:
    mgr, _clock = manager()
    work, actions = mgr.start(market(), Side.BUY, D(size), book(), T0, allow_taker=allow_taker)
    child = placed(actions)
    if ack:
        child.acknowledge(at(0.05), "v1")
    return mgr, work, child


def test_opens_with_a_post_only_order_at_the_best_bid() -> None:
    _mgr, work, child = start_buy()

    assert child.kind is OrderKind.POST_ONLY
    assert child.price == D("3000.00")
    assert child.size == D("1.000")
    assert work.status is WorkStatus.WORKING


def test_next_actions_is_idempotent() -> None:
    mgr, work, _child = start_buy(allow_taker=False)

    first = mgr.next_actions(work, book(ts=at(60)), at(60))
    second = mgr.next_actions(work, book(ts=at(60)), at(60))

    assert isinstance(only(first), CancelOrder)
    assert second == []


def test_partial_fill_remainder_is_requoted_at_the_same_price() -> None:
    # Arrange: 40% fills, then the venue drops the rest; meanwhile the bid has moved up.
    mgr, work, child = start_buy()
    work.apply(Filled(child.client_order_id, fill("f1", "0.400", seconds=2)))
    work.apply(Expired(child.client_order_id, at(3), "venue expired"))
    moved = book(bid="3001.50", ask="3001.60", ts=at(3.5))

    # Act
    actions = mgr.next_actions(work, moved, at(3.5))

    # Assert
    requote = placed(actions)
    assert requote.kind is OrderKind.POST_ONLY
    assert requote.price == D("3000.00")
    assert requote.size == D("0.600")


def test_ttl_cancels_after_sixty_seconds_then_expires_the_work() -> None:
    mgr, work, child = start_buy(allow_taker=False)

    before = mgr.next_actions(work, book(ts=at(59.9)), at(59.9))
    at_ttl = mgr.next_actions(work, book(ts=at(60)), at(60))
    work.apply(Cancelled(child.client_order_id, at(60.2)))
    after = mgr.next_actions(work, book(ts=at(61)), at(61))

    assert before == []
    assert isinstance(only(at_ttl), CancelOrder)
    assert child.state is OrderState.CANCELLED
    assert after == []
    assert work.status is WorkStatus.EXPIRED


def test_taker_fallback_after_ten_seconds_below_eighty_percent_within_one_tick() -> None:
    # Arrange: 30% filled by 10 s.
    mgr, work, child = start_buy()
    work.apply(Filled(child.client_order_id, fill("f1", "0.300", seconds=4)))

    # Act
    early = mgr.next_actions(work, book(ts=at(9.9)), at(9.9))
    cancel = mgr.next_actions(work, book(ts=at(10)), at(10))
    work.apply(Cancelled(child.client_order_id, at(10.1)))
    taker = mgr.next_actions(work, book(ts=at(10.6)), at(10.6))

    # Assert: IOC for the 0.7 remainder, limit one tick beyond the 3000.10 ask.
    assert early == []
    assert isinstance(only(cancel), CancelOrder)
    ioc = placed(taker)
    assert ioc.kind is OrderKind.IOC
    assert ioc.size == D("0.700")
    assert ioc.price == D("3000.11")
    assert work.taker_used


def test_no_taker_fallback_at_eighty_percent_filled() -> None:
    mgr, work, child = start_buy()
    work.apply(Filled(child.client_order_id, fill("f1", "0.800", seconds=4)))

    actions = mgr.next_actions(work, book(ts=at(12)), at(12))

    assert actions == []


def test_taker_fallback_respects_the_slippage_cap() -> None:
    # Arrange: the market ran 1% away from our 3000.00 quote; 0.5% cap is 3015.00.
    mgr, work, _child = start_buy()
    ran_away = book(bid="3030.00", ask="3030.10", ts=at(11))

    # Act
    actions = mgr.next_actions(work, ran_away, at(11))

    # Assert: no chase; the maker order keeps resting.
    assert actions == []
    assert work.live_child() is not None


def test_taker_limit_is_clipped_to_the_cap_when_one_tick_beyond_would_exceed_it() -> None:
    mgr, work, child = start_buy()
    near_cap = book(bid="3014.90", ask="3015.00", ts=at(11))

    mgr.next_actions(work, near_cap, at(11))
    work.apply(Cancelled(child.client_order_id, at(11.1)))
    ioc = placed(mgr.next_actions(work, near_cap, at(11.6)))

    assert ioc.price == D("3015.00")


def test_cancel_delay_of_500_ms_before_replacing() -> None:
    mgr, work, child = start_buy()
    work.apply(Expired(child.client_order_id, at(5), "venue expired"))

    too_soon = mgr.next_actions(work, book(ts=at(5.499)), at(5.499))
    hold_reason = work.hold_reason
    on_time = mgr.next_actions(work, book(ts=at(5.5)), at(5.5))

    assert too_soon == []
    assert hold_reason is not None and "cancel delay" in hold_reason
    assert isinstance(only(on_time), PlaceOrder)


def test_post_only_rejection_requotes_passively_and_gives_up_after_max_rejects() -> None:
    # Arrange: the ask dropped to our bid, so the post-only order was rejected.
    mgr, work, child = start_buy(ack=False)
    crossed_down = book(bid="2999.80", ask="3000.00", ts=at(1))
    work.apply(Rejected(child.client_order_id, at(1), "post-only would take liquidity"))

    # Act
    second = placed(mgr.next_actions(work, crossed_down, at(1.5)))
    work.apply(Rejected(second.client_order_id, at(1.6), "post-only would take liquidity"))
    third = placed(mgr.next_actions(work, crossed_down, at(2.1)))
    work.apply(Rejected(third.client_order_id, at(2.2), "insufficient balance"))
    final = mgr.next_actions(work, crossed_down, at(2.7))

    # Assert: one tick under the ask, never above our original price; then failed with the reason.
    assert second.price == D("2999.99")
    assert final == []
    assert work.status is WorkStatus.FAILED
    assert work.finish_reason is not None and "insufficient balance" in work.finish_reason


def test_stale_or_crossed_book_holds_placements() -> None:
    mgr, work, child = start_buy()
    work.apply(Expired(child.client_order_id, at(2)))

    stale = mgr.next_actions(work, book(ts=at(1)), at(6))
    crossed = mgr.next_actions(work, book(bid="3000.20", ask="3000.10", ts=at(6)), at(6))

    assert stale == crossed == []
    assert work.hold_reason is not None and "crossed" in work.hold_reason


def test_start_on_a_crossed_book_fails_without_sending() -> None:
    mgr, _clock = manager()

    work, actions = mgr.start(market(), Side.SELL, D("1"), book(bid="3001", ask="3000"), T0)

    assert actions == []
    assert work.status is WorkStatus.FAILED


def test_remainder_below_min_notional_completes_the_work() -> None:
    # Arrange: 0.999 of 1.000 filled; 0.001 x 3000 = 3 USDT < 5 USDT minimum.
    mgr, work, child = start_buy()
    work.apply(Filled(child.client_order_id, fill("f1", "0.999", seconds=1)))
    work.apply(Cancelled(child.client_order_id, at(1.5)))

    actions = mgr.next_actions(work, book(ts=at(2.5)), at(2.5))

    assert actions == []
    assert work.status is WorkStatus.COMPLETED
    assert work.finish_reason is not None and "below venue minimum" in work.finish_reason


def test_full_fill_completes_the_work() -> None:
    mgr, work, child = start_buy()
    work.apply(Filled(child.client_order_id, fill("f1", "1.000", seconds=3)))

    mgr.next_actions(work, book(ts=at(3.1)), at(3.1))

    assert work.status is WorkStatus.COMPLETED
    assert work.average_price == D("3000.00")


def test_sell_side_quotes_at_the_ask_and_taker_goes_one_tick_under_the_bid() -> None:
    mgr, _clock = manager()
    work, actions = mgr.start(market(), Side.SELL, D("1"), book(), T0)
    child = placed(actions)
    child.acknowledge(at(0.05))

    mgr.next_actions(work, book(ts=at(10)), at(10))
    work.apply(Cancelled(child.client_order_id, at(10.1)))
    ioc = placed(mgr.next_actions(work, book(ts=at(10.6)), at(10.6)))

    assert child.price == D("3000.10")
    assert ioc.price == D("2999.99")


def test_zombies_are_counted() -> None:
    unacked = Order("z1", "ETH/USDT", Side.BUY, OrderKind.POST_ONLY, D("1"), D("1"), T0)
    stuck_cancel = Order("z2", "ETH/USDT", Side.BUY, OrderKind.POST_ONLY, D("1"), D("1"), T0)
    stuck_cancel.acknowledge(at(0.1))
    stuck_cancel.request_cancel(at(1))
    old_open = Order("z3", "ETH/USDT", Side.BUY, OrderKind.POST_ONLY, D("1"), D("1"), T0)
    old_open.acknowledge(at(0.1))
    healthy_open = Order("ok", "ETH/USDT", Side.BUY, OrderKind.POST_ONLY, D("1"), D("1"), at(80))
    healthy_open.acknowledge(at(80.1))

    assert count_zombies([unacked, stuck_cancel, old_open, healthy_open], at(95), CFG) == 3


def test_cancel_refused_event_is_applied() -> None:
    mgr, work, child = start_buy(allow_taker=False)
    mgr.next_actions(work, book(ts=at(60)), at(60))

    work.apply(CancelRefused(child.client_order_id, at(60.1), "unknown order"))

    assert child.state is OrderState.OPEN
    assert work.apply(Accepted("someone-else", "v9", at(61))) is False
