"""Exit rules (SPEC 9), scenario by scenario, including their order and the anti-churn guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.trading.config import ExitConfig
from pipelines.trading.exits import ExitRule, PositionView, evaluate_exit, position_gain
from pipelines.trading.instruments import Side

D = Decimal
CFG = ExitConfig()
T0 = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def long_btc(**kw: object) -> PositionView:
    base: dict[str, object] = {
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "entry_price": D("100000.00"),
        "opened_at": T0,
        "is_major": True,
        "tick_size": D("0.01"),
    }
    base.update(kw)
    return PositionView(**base)  # type: ignore[arg-type]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_hard_stop_major_at_minus_point_eight_percent() -> None:
    decision = evaluate_exit(long_btc(), D("99200.00"), at(20), CFG)

    assert decision.exit
    assert decision.rule is ExitRule.HARD_STOP


def test_alt_is_not_stopped_at_minus_one_percent_but_is_at_minus_one_point_two() -> None:
    alt = long_btc(symbol="DOGE/USDT", is_major=False, entry_price=D("0.10000"), tick_size=D("0.00001"))

    holding = evaluate_exit(alt, D("0.09900"), at(20), CFG)
    stopped = evaluate_exit(alt, D("0.09880"), at(20), CFG)

    assert not holding.exit
    assert stopped.rule is ExitRule.HARD_STOP


def test_short_position_gain_is_side_aware() -> None:
    short = long_btc(side=Side.SELL)

    assert position_gain(Side.SELL, D("100"), D("99")) == pytest.approx(0.01)
    assert evaluate_exit(short, D("100800.00"), at(20), CFG).rule is ExitRule.HARD_STOP
    assert evaluate_exit(short, D("99300.00"), at(20), CFG).rule is ExitRule.TAKE_PROFIT


def test_ev_trail_exits_when_remaining_expectation_turns_against_the_gain() -> None:
    # Arrange: up 0.4%; the model now expects -0.25% more, below -0.5 x 0.4% = -0.2%.
    decision = evaluate_exit(long_btc(), D("100400.00"), at(60), CFG, expected_remaining_return=-0.0025)

    assert decision.exit
    assert decision.rule is ExitRule.EV_TRAIL


def test_ev_trail_holds_while_remaining_expectation_is_mild() -> None:
    decision = evaluate_exit(long_btc(), D("100400.00"), at(60), CFG, expected_remaining_return=-0.0015)

    assert not decision.exit


def test_never_churns_out_at_break_even_one_tick_after_entry() -> None:
    # Arrange: one tick above entry, two seconds in, and a negative forecast.
    decision = evaluate_exit(long_btc(), D("100000.01"), at(2), CFG, expected_remaining_return=-0.001)

    assert not decision.exit
    assert decision.rule is None


def test_time_stop_after_five_minutes_without_enough_gain() -> None:
    early = evaluate_exit(long_btc(), D("100040.00"), at(299), CFG)
    late = evaluate_exit(long_btc(), D("100040.00"), at(300), CFG)

    assert not early.exit
    assert late.rule is ExitRule.TIME_STOP


def test_time_stop_spares_a_position_with_enough_gain() -> None:
    decision = evaluate_exit(long_btc(), D("100060.00"), at(600), CFG)

    assert not decision.exit


def test_take_profit_at_point_seven_percent() -> None:
    below = evaluate_exit(long_btc(), D("100690.00"), at(30), CFG)
    hit = evaluate_exit(long_btc(), D("100700.00"), at(30), CFG)

    assert not below.exit
    assert hit.rule is ExitRule.TAKE_PROFIT


def test_first_rule_that_applies_wins() -> None:
    # Arrange: both EV trail (gain 0.8%, forecast -0.5%) and take profit apply; EV trail comes first.
    decision = evaluate_exit(long_btc(), D("100800.00"), at(30), CFG, expected_remaining_return=-0.005)

    assert decision.rule is ExitRule.EV_TRAIL


def test_new_listing_max_hold() -> None:
    listing = long_btc(symbol="NEW/USDT", is_major=False, max_hold_seconds=120.0)

    assert evaluate_exit(listing, D("100100.00"), at(119), CFG).exit is False
    assert evaluate_exit(listing, D("100100.00"), at(120), CFG).rule is ExitRule.MAX_HOLD


def test_nan_forecast_neither_triggers_nor_blocks() -> None:
    decision = evaluate_exit(long_btc(), D("100400.00"), at(60), CFG, expected_remaining_return=float("nan"))

    assert not decision.exit


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate_exit(long_btc(), D("100000"), datetime(2026, 11, 21, 9, 31), CFG)


@settings(max_examples=300, deadline=None)
@given(
    ticks=st.integers(min_value=-1, max_value=1),
    seconds=st.floats(min_value=0.0, max_value=299.0),
    forecast=st.floats(min_value=-1.0, max_value=1.0),
)
def test_property_within_one_tick_of_entry_only_the_time_stop_can_exit(
    ticks: int, seconds: float, forecast: float
) -> None:
    mark = D("100000.00") + D("0.01") * ticks

    decision = evaluate_exit(long_btc(), mark, at(seconds), CFG, expected_remaining_return=forecast)

    assert not decision.exit
