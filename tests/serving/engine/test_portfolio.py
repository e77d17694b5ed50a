"""The portfolio alone: round trips, signed positions, cash, per-strategy equity (pure, no IO)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pipelines.trading.instruments import Side
from pipelines.trading.orders import BookTop, Fill, Liquidity
from serving.engine.portfolio import Portfolio

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LOT = Decimal("0.001")


def fill(n: int, size: str, price: str, fee: str = "0") -> Fill:
    return Fill(f"f{n}", Decimal(size), Decimal(price), Decimal(fee), Liquidity.MAKER, T0 + timedelta(seconds=n))


def test_a_long_round_trip_with_a_partial_exit_books_pnl_with_both_legs_fees() -> None:
    p = Portfolio({"a": Decimal(1000), "b": None})
    key = ("a", "", "BTC/USDT")
    p.apply_fill(key, Side.BUY, fill(1, "2", "100", "0.2"), is_major=True, lot=LOT, reduce_only=False)
    half = p.apply_fill(key, Side.SELL, fill(2, "1", "101", "0.101"), is_major=True, lot=LOT, reduce_only=True)
    assert half.position is not None and half.round_trip is None
    assert p.view("a").positions[("", "BTC/USDT")].realized_pnl == Decimal("1") - Decimal("0.101")
    done = p.apply_fill(key, Side.SELL, fill(3, "1", "102", "0.102"), is_major=True, lot=LOT, reduce_only=True)
    trip = done.round_trip
    assert trip is not None and done.position is None
    assert trip.net_pnl == Decimal("3") - Decimal("0.403") and trip.size == Decimal(2)
    assert p.cash[""] == trip.net_pnl  # the cash moved by exactly the round trip's PnL
    assert p.strategy_equity("a") == Decimal(1000) + trip.net_pnl
    assert p.realized.get("b", Decimal(0)) == 0


def test_a_short_round_trip_gains_when_the_price_falls() -> None:
    p = Portfolio({"h": None})
    key = ("h", "perp", "ETH/USDT:USDT")
    p.apply_fill(key, Side.SELL, fill(1, "1", "200"), is_major=True, lot=LOT, reduce_only=False)
    p.on_book("perp", "ETH/USDT:USDT", BookTop(Decimal(189), Decimal(190), Decimal(1), Decimal(1), T0))
    [view] = p.view("h").positions.values()
    assert view.size == Decimal(-1) and view.unrealized_pnl == Decimal(10)  # marked at the ask
    trip = p.apply_fill(key, Side.BUY, fill(2, "1", "190"), is_major=True, lot=LOT, reduce_only=True).round_trip
    assert trip is not None and trip.net_pnl == Decimal(10) and trip.side is Side.SELL


def test_an_exit_fill_without_a_position_opens_nothing() -> None:
    p = Portfolio({"a": None})
    result = p.apply_fill(
        ("a", "", "BTC/USDT"), Side.SELL, fill(1, "1", "100"), is_major=True, lot=LOT, reduce_only=True
    )
    assert result.ignored and p.positions == {}


@given(
    buys=st.lists(st.tuples(st.integers(1, 50), st.integers(9000, 11000)), min_size=1, max_size=6),
    exit_price=st.integers(9000, 11000),
    fee_bp=st.integers(0, 20),
)
def test_cash_moves_by_the_round_trips_net_pnl(buys: list[tuple[int, int]], exit_price: int, fee_bp: int) -> None:
    p = Portfolio({"a": None})
    key = ("a", "", "X/USDT")
    rate = Decimal(fee_bp) / 10_000
    total = Decimal(0)
    for n, (size, cents) in enumerate(buys):
        size_d, price = Decimal(size) / 10, Decimal(cents) / 100
        p.apply_fill(
            key,
            Side.BUY,
            fill(n, str(size_d), str(price), str(size_d * price * rate)),
            is_major=False,
            lot=LOT,
            reduce_only=False,
        )
        total += size_d
    price = Decimal(exit_price) / 100
    trip = p.apply_fill(
        key,
        Side.SELL,
        fill(99, str(total), str(price), str(total * price * rate)),
        is_major=False,
        lot=LOT,
        reduce_only=True,
    ).round_trip
    assert trip is not None and p.positions == {}
    assert p.cash[""] == trip.net_pnl
