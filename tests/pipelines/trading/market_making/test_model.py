"""Avellaneda-Stoikov closed forms and the Decimal quote plan: hand-computed values and properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.trading.instruments import MarketInfo, is_on_tick, rejection_reason
from pipelines.trading.market_making.config import MarketMakingConfig
from pipelines.trading.market_making.model import (
    Inventory,
    Touch,
    clip_size,
    needs_refresh,
    optimal_spread,
    plan_quotes,
    reservation_price,
    time_to_horizon,
)

MARKET = MarketInfo(
    symbol="ETH/USDT",
    venue_symbol_id="ETHUSDT",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("0.001"),
    min_notional=Decimal("5"),
    maker_fee=Decimal("0.001"),
    taker_fee=Decimal("0.001"),
)
CFG = MarketMakingConfig(symbol="ETH/USDT", gamma=0.1, order_notional=Decimal("20"), max_inventory_clips=5)


def test_reservation_price_and_spread_match_hand_computed_values() -> None:
    # r = 100 - 2 * 0.1 * 2^2 * 0.5 = 100 - 0.4
    assert reservation_price(100.0, 2.0, 0.1, 2.0, 0.5) == pytest.approx(99.6, abs=1e-12)
    # delta = 0.1 * 4 * 0.5 + (2 / 0.1) * ln(1 + 0.1 / 1.5) = 0.2 + 20 * ln(16/15) = 0.2 + 1.290770422751...
    assert optimal_spread(0.1, 2.0, 0.5, 1.5) == pytest.approx(1.4907704227514236, abs=1e-12)
    # At the horizon only the arrival term is left: 2/gamma ln(1 + gamma/k) = 4 ln(4/3) for gamma 0.5.
    assert optimal_spread(0.5, 2.0, 0.0, 1.5) == pytest.approx(4 * math.log(4 / 3), abs=1e-12)


def test_sigma_is_squared_in_both_formulas() -> None:
    skew_1 = 100.0 - reservation_price(100.0, 1.0, 0.1, 1.0, 1.0)
    skew_3 = 100.0 - reservation_price(100.0, 1.0, 0.1, 3.0, 1.0)
    assert skew_3 == pytest.approx(9 * skew_1)
    arrival = optimal_spread(0.1, 0.0, 1.0, 1.5)
    assert optimal_spread(0.1, 3.0, 1.0, 1.5) - arrival == pytest.approx(
        9 * (optimal_spread(0.1, 1.0, 1.0, 1.5) - arrival)
    )


# Inventories are venue lots (>= 1e-8 of the base here); a denormal like 5e-324 underflows the skew
# q * gamma * sigma^2 * tau to 0.0 and says nothing about the model.
INVENTORY = st.one_of(st.just(0.0), st.floats(1e-8, 50), st.floats(-50, -1e-8))


@given(
    q1=INVENTORY,
    q2=INVENTORY,
    sigma=st.floats(0.01, 10),
    tau=st.floats(0.001, 100),
)
def test_reservation_price_moves_against_inventory(q1: float, q2: float, sigma: float, tau: float) -> None:
    r1, r2 = (reservation_price(100.0, q, 0.1, sigma, tau) for q in (q1, q2))
    if q1 < q2:
        assert r1 >= r2  # more inventory, lower reservation price: sell sooner, buy later
    # Relative to the mid: long inventory puts r below it, short above it, flat on it.
    skew = reservation_price(0.0, q1, 0.1, sigma, tau)
    assert (skew < 0) == (q1 > 0) and (skew > 0) == (q1 < 0)


def test_horizon_finite_counts_down_and_rolling_stays() -> None:
    start = datetime(2024, 8, 9, 0, 0, tzinfo=UTC)  # an hour boundary
    assert time_to_horizon(start, "finite", 3600.0) == pytest.approx(3600.0)
    assert time_to_horizon(start + timedelta(minutes=45), "finite", 3600.0) == pytest.approx(900.0)
    assert time_to_horizon(start + timedelta(minutes=45), "rolling", 3600.0) == 3600.0


def test_quotes_rounded_outward_to_the_tick_with_decimal() -> None:
    touch = Touch(Decimal("100.00"), Decimal("100.10"))
    plan = plan_quotes(MARKET, touch, Inventory(Decimal(0)), sigma=0.05, k=10.0, tau=60.0, cfg=CFG)
    # spread = 0.1 * 0.05^2 * 60 + 20 ln(1.01) = 0.015 + 0.199007 = 0.214007; r = mid = 100.05 (flat)
    assert plan.reservation == pytest.approx(100.05) and plan.spread == pytest.approx(0.2140066, abs=1e-6)
    # 100.05 - 0.107003 = 99.942997 rounds DOWN to 99.94; 100.157003 rounds UP to 100.16.
    assert plan.bid_price == Decimal("99.94") and plan.ask_price == Decimal("100.16")
    assert isinstance(plan.bid_price, Decimal) and plan.bid_price.as_tuple().exponent == -2
    # 20 USDT at each quote price rounded down to the 0.001 lot: 20/99.94 = 0.2001, 20/100.16 = 0.19968.
    assert plan.bid_size == Decimal("0.200") and plan.ask_size == Decimal("0.199")


def test_minimum_and_maximum_spread_clamp_the_model() -> None:
    touch = Touch(Decimal("100.00"), Decimal("100.02"))
    tight = plan_quotes(MARKET, touch, Inventory(Decimal(0)), sigma=1e-6, k=1e6, tau=1.0, cfg=CFG)
    assert tight.spread == pytest.approx(CFG.min_spread * 100.01)
    wide = plan_quotes(MARKET, touch, Inventory(Decimal(0)), sigma=5.0, k=1e-3, tau=3600.0, cfg=CFG)
    assert wide.spread == pytest.approx(CFG.max_spread * 100.01)
    assert any("check k" in reason for reason in wide.reasons) and not tight.reasons


def test_clip_is_raised_to_the_venue_minimum() -> None:
    strict = MarketInfo(
        symbol="BTC/USDT",
        venue_symbol_id="BTCUSDT",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("0.00001"),
        min_notional=Decimal("100"),
        maker_fee=Decimal(0),
        taker_fee=Decimal(0),
    )
    size = clip_size(strict, Decimal("60000"), CFG)  # 20 USDT is below the 100 USDT minimum
    assert size * Decimal("60000") >= Decimal("110") and rejection_reason(strict, Decimal("60000"), size) is None


def test_rebalancing_above_sixty_percent_quotes_only_the_reducing_side() -> None:
    touch = Touch(Decimal("100.00"), Decimal("100.10"))
    long = plan_quotes(MARKET, touch, Inventory(Decimal("0.7")), sigma=0.05, k=10.0, tau=60.0, cfg=CFG)
    assert long.rebalancing and long.bid_price is None and long.ask_price is not None
    assert long.ask_price <= touch.ask  # at least as aggressive as the touch, still above the bid
    short = plan_quotes(MARKET, touch, Inventory(Decimal("-0.7")), sigma=0.05, k=10.0, tau=60.0, cfg=CFG)
    assert short.rebalancing and short.ask_price is None and short.bid_price is not None
    calm = plan_quotes(MARKET, touch, Inventory(Decimal("0.5")), sigma=0.05, k=10.0, tau=60.0, cfg=CFG)
    assert not calm.rebalancing and calm.bid_price is not None and calm.ask_price is not None


prices = st.decimals(min_value=Decimal("50"), max_value=Decimal("200"), places=2)


@given(
    bid=prices,
    width=st.integers(1, 40),
    position=st.decimals(min_value=Decimal("-1.2"), max_value=Decimal("1.2"), places=3),
    resting_buy=st.decimals(min_value=Decimal(0), max_value=Decimal("0.6"), places=3),
    resting_sell=st.decimals(min_value=Decimal(0), max_value=Decimal("0.6"), places=3),
    sigma=st.floats(0.0, 5.0),
    k=st.floats(0.01, 100.0),
    gamma=st.floats(0.001, 5.0),
    tau=st.floats(0.0, 7200.0),
)
def test_quotes_never_cross_and_inventory_never_exceeds_the_cap(
    bid: Decimal,
    width: int,
    position: Decimal,
    resting_buy: Decimal,
    resting_sell: Decimal,
    sigma: float,
    k: float,
    gamma: float,
    tau: float,
) -> None:
    touch = Touch(bid, bid + Decimal("0.01") * width)
    cfg = CFG.model_copy(update={"gamma": gamma})
    plan = plan_quotes(
        MARKET, touch, Inventory(position, resting_buy, resting_sell), sigma=sigma, k=k, tau=tau, cfg=cfg
    )
    cap = plan.clip * cfg.max_inventory_clips
    if plan.bid_price is not None:
        assert plan.bid_size is not None and plan.bid_price < touch.ask  # rests: never crosses the ask
        assert is_on_tick(MARKET, plan.bid_price) and rejection_reason(MARKET, plan.bid_price, plan.bid_size) is None
        assert position + resting_buy + plan.bid_size <= cap  # every buy filling stays within the cap
    if plan.ask_price is not None:
        assert plan.ask_size is not None and plan.ask_price > touch.bid
        assert is_on_tick(MARKET, plan.ask_price) and rejection_reason(MARKET, plan.ask_price, plan.ask_size) is None
        assert position - resting_sell - plan.ask_size >= -cap
    if plan.bid_price is not None and plan.ask_price is not None:
        assert plan.bid_price < plan.ask_price


def test_no_short_inventory_on_spot() -> None:
    touch = Touch(Decimal("100.00"), Decimal("100.10"))
    spot = CFG.model_copy(update={"allow_short": False})
    flat = plan_quotes(MARKET, touch, Inventory(Decimal(0)), sigma=0.05, k=10.0, tau=60.0, cfg=spot)
    assert flat.ask_price is None and flat.bid_price is not None
    held = plan_quotes(MARKET, touch, Inventory(Decimal("0.1")), sigma=0.05, k=10.0, tau=60.0, cfg=spot)
    assert held.ask_size is not None and held.ask_size <= Decimal("0.1")


def test_refresh_on_mid_move_or_after_thirty_seconds() -> None:
    at = datetime(2024, 8, 9, tzinfo=UTC)
    assert needs_refresh(None, None, 100.0, at, CFG)
    assert not needs_refresh(100.0, at, 100.01, at + timedelta(seconds=29), CFG)
    assert needs_refresh(100.0, at, 100.0, at + timedelta(seconds=30), CFG)
    assert needs_refresh(100.0, at, 100.0 * (1 + 1.01 * CFG.refresh_mid_move), at + timedelta(seconds=1), CFG)
    assert needs_refresh(100.0, at, 100.0 * (1 - 1.01 * CFG.refresh_mid_move), at + timedelta(seconds=1), CFG)


def test_config_rejects_unknown_keys_and_inverted_spreads() -> None:
    with pytest.raises(ValueError):
        MarketMakingConfig.model_validate({"gama": 0.1})
    with pytest.raises(ValueError):
        MarketMakingConfig(min_spread=0.01, max_spread=0.005)


def test_q_is_measured_from_the_target_holding() -> None:
    # Arrange: mid 100.00, one clip = 20 USDT / 100 = 0.2 ETH; 0.7 held against a target of 0.3
    touch = Touch(Decimal("99.99"), Decimal("100.01"))
    spot = CFG.model_copy(update={"allow_short": False})
    # Act
    plan = plan_quotes(MARKET, touch, Inventory(Decimal("0.7"), target=Decimal("0.3")), sigma=0.05, k=10.0,
                       tau=60.0, cfg=spot)
    at_target = plan_quotes(MARKET, touch, Inventory(Decimal("0.5"), target=Decimal("0.5")), sigma=0.05, k=10.0,
                            tau=60.0, cfg=spot)
    # Assert: q = (0.7 - 0.3) / 0.2 = 2 clips; r = 100 - 2 * 0.1 * 0.05^2 * 60 = 100 - 0.03 = 99.97
    assert plan.clip == Decimal("0.2") and plan.q == pytest.approx(2.0)
    assert plan.reservation == pytest.approx(99.97, abs=1e-12)
    # Holding exactly the target is flat: r is the mid and a spot maker quotes both sides at once
    assert at_target.q == 0.0 and at_target.reservation == pytest.approx(100.0, abs=1e-12)
    assert at_target.bid_price is not None and at_target.ask_price is not None and not at_target.rebalancing


def test_rebalancing_and_the_cap_follow_q_not_the_holding() -> None:
    touch = Touch(Decimal("99.99"), Decimal("100.01"))
    spot = CFG.model_copy(update={"allow_short": False})
    # 1.0 held against a target of 0.3: q = 0.7 = 3.5 clips > 60% of the 5-clip cap: only the ask, at the touch
    long = plan_quotes(MARKET, touch, Inventory(Decimal("1.0"), target=Decimal("0.3")), sigma=0.05, k=10.0,
                       tau=60.0, cfg=spot)
    assert long.rebalancing and long.bid_price is None and long.ask_price is not None
    # The same 1.0 held against a target of 1.0 is flat: no rebalancing, both sides
    flat = plan_quotes(MARKET, touch, Inventory(Decimal("1.0"), target=Decimal("1.0")), sigma=0.05, k=10.0,
                       tau=60.0, cfg=spot)
    assert not flat.rebalancing and flat.bid_price is not None and flat.ask_price is not None


@given(
    bid=prices,
    width=st.integers(1, 40),
    held=st.decimals(min_value=Decimal(0), max_value=Decimal("2"), places=3),
    target=st.decimals(min_value=Decimal(0), max_value=Decimal("2"), places=3),
    resting_buy=st.decimals(min_value=Decimal(0), max_value=Decimal("0.6"), places=3),
    offered=st.floats(0.0, 1.0),
    sigma=st.floats(0.0, 5.0),
    tau=st.floats(0.0, 7200.0),
)
def test_a_spot_sell_never_exceeds_the_base_held_and_q_stays_within_the_cap(
    bid: Decimal, width: int, held: Decimal, target: Decimal, resting_buy: Decimal, offered: float, sigma: float,
    tau: float,
) -> None:
    # Arrange: some of the holding may already be offered by asks still resting (never more than is held)
    resting_sell = (held * Decimal(repr(offered))).quantize(Decimal("0.001"), rounding="ROUND_DOWN")
    touch = Touch(bid, bid + Decimal("0.01") * width)
    spot = CFG.model_copy(update={"allow_short": False})
    inventory = Inventory(held, resting_buy, resting_sell, target)
    # Act
    plan = plan_quotes(MARKET, touch, inventory, sigma=sigma, k=10.0, tau=tau, cfg=spot)
    # Assert: every ask filling, the new one included, leaves the holding >= 0; q stays within +-cap
    cap = plan.clip * spot.max_inventory_clips
    if plan.ask_size is not None:
        assert held - resting_sell - plan.ask_size >= 0
        assert inventory.q - resting_sell - plan.ask_size >= -cap
    if plan.bid_size is not None:
        assert inventory.q + resting_buy + plan.bid_size <= cap
