"""Paper matching engine: trade-through fills, partials by volume, fees, latency, taker fills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.trading.config import OrderConfig, PaperConfig
from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.orders import (
    Accepted,
    BookTop,
    Cancelled,
    CancelOrder,
    CancelRefused,
    ClientOrderIdFactory,
    Expired,
    Filled,
    Liquidity,
    Order,
    OrderKind,
    OrderManager,
    OrderState,
    PlaceOrder,
    Rejected,
    VenueEvent,
    WorkStatus,
)
from pipelines.trading.paper import PaperEngine, Trade

D = Decimal
T0 = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def market(maker_fee: str = "0.001", taker_fee: str = "0.002") -> MarketInfo:
    return MarketInfo("ETH/USDT", "ETHUSDT", D("0.01"), D("0.001"), D("5"), D(maker_fee), D(taker_fee))


def engine(**cfg: object) -> PaperEngine:
    paper = PaperEngine(market(), PaperConfig(**cfg))  # type: ignore[arg-type]
    paper.on_book(BookTop(D("3000.00"), D("3000.10"), D("2"), D("2"), T0))
    return paper


def order(
    cid: str = "c1",
    side: Side = Side.BUY,
    price: str = "3000.00",
    size: str = "1.000",
    kind: OrderKind = OrderKind.POST_ONLY,
) -> Order:
    return Order(cid, "ETH/USDT", side, kind, D(price), D(size), T0)


def fills(events: list[VenueEvent]) -> list[Filled]:
    return [e for e in events if isinstance(e, Filled)]


def test_order_is_not_live_before_the_latency() -> None:
    # Arrange: 50 ms latency; a trade through our price 10 ms after submit.
    paper = engine()
    paper.submit(order(), T0)

    # Act
    early = paper.on_trade(Trade(D("2999.00"), D("5"), at(0.010)))
    later = paper.on_trade(Trade(D("2999.00"), D("5"), at(0.060)))

    # Assert
    assert early == []
    assert isinstance(later[0], Accepted)
    assert fills(later)[0].fill.size == D("1.000")


def test_trade_at_the_limit_does_not_fill_by_default() -> None:
    paper = engine()
    paper.submit(order(), T0)
    paper.advance(at(0.1))

    events = paper.on_trade(Trade(D("3000.00"), D("5"), at(1)))

    assert events == []


def test_trade_at_the_limit_fills_when_configured() -> None:
    paper = engine(fill_at_limit_price=True)
    paper.submit(order(), T0)
    paper.advance(at(0.1))

    events = paper.on_trade(Trade(D("3000.00"), D("5"), at(1)))

    assert fills(events)[0].fill.price == D("3000.00")


def test_partial_fill_up_to_the_traded_volume() -> None:
    # Arrange
    paper = engine()
    paper.submit(order(), T0)
    paper.advance(at(0.1))

    # Act
    first = fills(paper.on_trade(Trade(D("2999.90"), D("0.3004"), at(1))))
    second = fills(paper.on_trade(Trade(D("2999.80"), D("5"), at(2))))

    # Assert: 0.3004 rounds down to the 0.001 lot; the rest fills at our limit, as maker.
    assert [f.fill.size for f in first] == [D("0.300")]
    assert [f.fill.size for f in second] == [D("0.700")]
    assert all(f.fill.price == D("3000.00") and f.fill.liquidity is Liquidity.MAKER for f in first + second)
    assert paper.resting == []


def test_maker_fee_and_rebate() -> None:
    rebate_market = PaperEngine(market(maker_fee="-0.0001"), PaperConfig())
    rebate_market.on_book(BookTop(D("3000.00"), D("3000.10"), D("2"), D("2"), T0))
    rebate_market.submit(order(), T0)
    rebate_market.advance(at(0.1))

    fill = fills(rebate_market.on_trade(Trade(D("2999.00"), D("1"), at(1))))[0].fill

    assert fill.fee == D("1.000") * D("3000.00") * D("-0.0001")
    assert fill.fee < 0


def test_best_price_then_time_priority_shares_the_volume() -> None:
    paper = engine()
    paper.submit(order("low", price="2999.50"), T0)
    paper.submit(order("high", price="3000.00"), at(0.001))
    paper.submit(order("high2", price="3000.00"), at(0.002))
    paper.advance(at(0.1))

    events = fills(paper.on_trade(Trade(D("2999.00"), D("1.5"), at(1))))

    assert [(f.client_order_id, f.fill.size) for f in events] == [("high", D("1.000")), ("high2", D("0.500"))]


def test_post_only_that_would_cross_is_rejected() -> None:
    paper = engine()
    paper.submit(order(price="3000.10"), T0)

    events = paper.advance(at(0.1))

    assert isinstance(events[0], Rejected)
    assert "post-only" in events[0].reason


def test_order_below_min_notional_is_rejected_like_a_venue_would() -> None:
    paper = engine()
    paper.submit(order(size="0.001"), T0)

    events = paper.advance(at(0.1))

    assert isinstance(events[0], Rejected)
    assert "minimum" in events[0].reason


def test_taker_fills_against_the_top_with_slippage_capped_at_the_limit() -> None:
    # Arrange: top of book 2 @ 3000.10; IOC buy 3 with limit 3000.20; 2 bps slippage -> 3000.71 > limit.
    paper = engine()
    paper.submit(order(price="3000.20", size="3.000", kind=OrderKind.IOC), T0)

    # Act
    events = paper.advance(at(0.1))

    # Assert: 2 filled at the limit as taker, the remaining 1 expires.
    taker = fills(events)[0].fill
    assert taker.size == D("2.000")
    assert taker.price == D("3000.20")
    assert taker.liquidity is Liquidity.TAKER
    assert taker.fee == D("2.000") * D("3000.20") * D("0.002")
    assert isinstance(events[-1], Expired)


def test_taker_slippage_moves_the_price_adversely_by_the_configured_fraction() -> None:
    paper = engine(taker_slippage=0.0001)
    paper.submit(order(side=Side.SELL, price="2990.00", size="1.000", kind=OrderKind.IOC), T0)

    taker = fills(paper.advance(at(0.1)))[0].fill

    # 3000.00 x (1 - 0.0001) = 2999.70, rounded down (against us) to the tick.
    assert taker.price == D("2999.70")


def test_cancel_takes_latency_and_a_fill_can_land_first() -> None:
    paper = engine()
    paper.submit(order(), T0)
    paper.advance(at(0.1))

    paper.cancel("c1", at(1.000))
    raced = paper.on_trade(Trade(D("2999.00"), D("0.4"), at(1.020)))
    confirmed = paper.advance(at(1.060))

    assert fills(raced)[0].fill.size == D("0.400")
    assert isinstance(confirmed[0], Cancelled)


def test_cancel_of_a_filled_order_is_refused() -> None:
    paper = engine()
    paper.submit(order(), T0)
    paper.on_trade(Trade(D("2999.00"), D("5"), at(0.1)))

    paper.cancel("c1", at(1))
    events = paper.advance(at(2))

    assert isinstance(events[0], CancelRefused)


def test_time_must_not_go_backwards() -> None:
    paper = engine()
    paper.advance(at(5))

    with pytest.raises(ValueError, match="backwards"):
        paper.advance(at(4))


@settings(max_examples=150, deadline=None)
@given(
    trades=st.lists(
        st.tuples(
            st.decimals(min_value=D("2990"), max_value=D("3010"), places=2),
            st.decimals(min_value=D("0"), max_value=D("2"), places=4),
        ),
        max_size=30,
    )
)
def test_property_a_resting_buy_never_overfills_and_only_fills_on_prints_through_it(
    trades: list[tuple[Decimal, Decimal]],
) -> None:
    paper = engine()
    paper.submit(order(), T0)
    paper.advance(at(0.1))
    total = D(0)

    for i, (price, size) in enumerate(trades):
        for event in fills(paper.on_trade(Trade(price, size, at(1 + i)))):
            assert price < D("3000.00")
            assert event.fill.size <= size
            total += event.fill.size

    assert total <= D("1.000")


# ---- end to end with the order policy ----------------------------------------------------------------------
def test_working_order_end_to_end_maker_partial_then_taker_fallback() -> None:
    # Arrange
    clock_now = [T0]
    mgr = OrderManager(OrderConfig(), ClientOrderIdFactory(lambda: clock_now[0]))
    paper = engine()
    top = BookTop(D("3000.00"), D("3000.10"), D("2"), D("2"), T0)
    work, actions = mgr.start(market(), Side.BUY, D("1.000"), top, T0)

    def send(batch: list[PlaceOrder | CancelOrder], now: datetime) -> None:
        for action in batch:
            if isinstance(action, PlaceOrder):
                route(paper.submit(action.order, now))
            else:
                route(paper.cancel(action.client_order_id, now))

    def route(events: list[VenueEvent]) -> None:
        for event in events:
            assert work.apply(event)

    # Act: maker order rests; a print through it fills 0.25; at 10 s the policy falls back to a taker.
    send(actions, T0)
    route(paper.on_trade(Trade(D("2999.90"), D("0.25"), at(3))))
    for step in range(1, 40):
        now = at(9.5 + step * 0.1)
        route(paper.advance(now))
        fresh = BookTop(D("3000.00"), D("3000.10"), D("2"), D("2"), now)
        route(paper.on_book(fresh))
        send(mgr.next_actions(work, fresh, now), now)

    # Assert
    assert work.status is WorkStatus.COMPLETED
    assert work.filled == D("1.000")
    maker, taker = work.children
    assert maker.state is OrderState.CANCELLED and maker.filled == D("0.250")
    assert taker.kind is OrderKind.IOC and taker.state is OrderState.FILLED
    assert taker.price == D("3000.11")
    expected_fees = D("0.250") * D("3000.00") * D("0.001") + D("0.750") * D("3000.11") * D("0.002")
    assert work.fees == expected_fees
