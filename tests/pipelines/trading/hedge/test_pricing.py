"""Sizes and prices come from each venue's own metadata, in Decimal, inside the slippage band."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.trading.hedge.config import HedgeConfig
from pipelines.trading.hedge.pricing import (
    common_lot,
    expected_edge_bps,
    hedgeable,
    maker_size,
    spread_cost_bps,
    taker_limit,
)
from pipelines.trading.instruments import MarketInfo, Side, is_on_tick

BP = MarketInfo("ETH/USDC", "ETH_USDC", Decimal("0.01"), Decimal("0.0001"), Decimal(0), Decimal(0), Decimal("0.0004"))
HL = MarketInfo(
    "ETH/USDC:USDC", "1", Decimal("0.1"), Decimal("0.001"), Decimal(10), Decimal("0.00015"), Decimal("0.00045")
)


def test_common_lot_is_the_least_common_multiple() -> None:
    assert common_lot(Decimal("0.0001"), Decimal("0.001")) == Decimal("0.001")
    assert common_lot(Decimal("0.0004"), Decimal("0.0006")) == Decimal("0.0012")
    assert common_lot(Decimal("1"), Decimal("0.5")) == Decimal("1")


def test_maker_size_is_a_multiple_of_both_lots_and_clears_both_minimums() -> None:
    check = maker_size(Decimal(50), Decimal("3000.00"), BP, HL)
    assert check.ok and check.size == Decimal("0.016")
    small = maker_size(Decimal(10), Decimal("3000.00"), BP, HL)  # $10 -> raised to $10 x 1.1 on HL's lot
    assert small.ok and small.size == Decimal("0.004") and small.size * 3000 >= 11
    refused = maker_size(Decimal(5), Decimal("3000.00"), BP, HL)
    assert not refused.ok and "minimum" in (refused.reason or "")


@pytest.mark.parametrize(
    ("side", "touch", "expected"), [(Side.SELL, "3000.0", "2994.0"), (Side.BUY, "3000.1", "3006.1")]
)
def test_taker_limit_is_on_the_hedge_tick_and_inside_the_band(side: Side, touch: str, expected: str) -> None:
    assert taker_limit(HL, side, Decimal(touch), Decimal("0.002")) == Decimal(expected)


@given(
    touch=st.decimals(min_value=Decimal("0.5"), max_value=Decimal(100000), places=1),
    band=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.05"), places=4),
    side=st.sampled_from(list(Side)),
)
def test_taker_limit_never_leaves_the_band_and_stays_marketable(touch: Decimal, band: Decimal, side: Side) -> None:
    price = taker_limit(HL, side, touch, band)
    assert is_on_tick(HL, price)
    if side is Side.SELL:
        assert touch * (1 - band) <= price <= touch
    else:
        assert touch <= price <= touch * (1 + band)


def test_hedgeable_rounds_down_and_drops_what_is_below_the_minimum() -> None:
    assert hedgeable(HL, Decimal("0.0049"), Decimal(3000)) == Decimal("0.004")
    assert hedgeable(HL, Decimal("0.0029"), Decimal(3000)) == 0  # $6 < $10


def test_spread_cost_and_edge_against_the_rebate() -> None:
    assert spread_cost_bps(Side.BUY, Decimal(3000), Decimal("2999.4")) == pytest.approx(2.0)
    assert spread_cost_bps(Side.SELL, Decimal(3000), Decimal("2999.4")) == pytest.approx(-2.0)
    cfg = HedgeConfig(primary_maker_fee=Decimal("-0.0003"))
    edge, cost = expected_edge_bps(cfg, Side.BUY, Decimal(3000), Decimal("2999.4"), BP, HL)
    assert (round(edge, 6), round(cost, 6)) == (1.0, 2.0)
    with_fee = HedgeConfig(primary_maker_fee=Decimal("-0.0003"), include_hedge_taker_fee=True)
    assert expected_edge_bps(with_fee, Side.BUY, Decimal(3000), Decimal("2999.4"), BP, HL)[0] == pytest.approx(-3.5)


def test_config_rejects_what_spec_13_does_not_allow() -> None:
    with pytest.raises(ValueError):
        HedgeConfig(hedge_timeout_seconds=2)
    with pytest.raises(ValueError):
        HedgeConfig(phases=(Decimal(20), Decimal(10)))
    with pytest.raises(ValueError):
        HedgeConfig(primary_venue="x", hedge_venue="x")
    with pytest.raises(ValueError):
        HedgeConfig.model_validate({"hedge_timout_seconds": 5})
