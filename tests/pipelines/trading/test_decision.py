"""Expected-value entry gate: formula, cost-aware threshold, Bayesian win-rate band."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.trading.config import DecisionConfig
from pipelines.trading.decision import (
    EntryInputs,
    WinRateTracker,
    decide_entry,
    entry_threshold,
    expected_value,
)

CFG = DecisionConfig()


def inputs(**overrides: float) -> EntryInputs:
    base = EntryInputs(
        p_win=0.60,
        avg_win=0.007,
        avg_loss=0.008,
        fees=0.001,
        expected_slippage=0.0002,
        spread=0.0004,
        volatility=0.003,
    )
    return replace(base, **overrides)


def test_expected_value_matches_the_spec_formula() -> None:
    # Arrange: E = 0.6*0.007 - 0.4*0.008 - 0.001 - 0.0002 - 0.0004/2
    trade = inputs()

    # Act
    ev = expected_value(trade)

    # Assert
    assert ev == pytest.approx(0.0042 - 0.0032 - 0.001 - 0.0002 - 0.0002)


def test_enters_when_edge_clears_costs_and_threshold() -> None:
    # Arrange: E = 0.65*0.007 - 0.35*0.006 - 0.0006 - 0.0001 - 0.0001 = 0.00165
    trade = inputs(p_win=0.65, avg_loss=0.006, fees=0.0006, expected_slippage=0.0001, spread=0.0002)

    # Act
    decision = decide_entry(trade, CFG)

    # Assert: threshold = 0.0003 + 0.1*0.003 + 0.5*0.0002 = 0.0007
    assert decision.enter
    assert decision.threshold == pytest.approx(0.0007)
    assert decision.reason.startswith("enter")


def test_skips_when_fees_and_spread_eat_the_edge() -> None:
    # Arrange: the same edge as above but taker fees both ways and a wide spread.
    trade = inputs(p_win=0.65, avg_loss=0.006, fees=0.002, expected_slippage=0.0005, spread=0.002)

    # Act
    decision = decide_entry(trade, CFG)

    # Assert
    assert not decision.enter
    assert decision.expected_value < 0
    assert "skip" in decision.reason


def test_threshold_rises_with_volatility_and_spread() -> None:
    calm = entry_threshold(inputs(volatility=0.001, spread=0.0002), CFG).total
    volatile = entry_threshold(inputs(volatility=0.01, spread=0.0002), CFG).total
    wide = entry_threshold(inputs(volatility=0.001, spread=0.002), CFG).total

    assert volatile > calm
    assert wide > calm


def test_losing_streak_raises_threshold_by_at_most_the_band() -> None:
    # Arrange: 30 losses in a row against a Beta(50, 50) prior.
    tracker = WinRateTracker(CFG, [False] * 30)
    trade = inputs()

    # Act
    neutral = entry_threshold(trade, CFG).total
    after_losses = entry_threshold(trade, CFG, tracker)

    # Assert: the shift saturates at +2 points of win probability times dE/dp.
    assert after_losses.win_rate_shift == pytest.approx(0.02)
    assert after_losses.total == pytest.approx(neutral + 0.02 * (0.007 + 0.008))


def test_winning_streak_lowers_threshold_by_at_most_the_band_and_never_below_zero() -> None:
    tracker = WinRateTracker(CFG, [True] * 50)
    no_costs_cfg = DecisionConfig(base_threshold=0.0, volatility_coefficient=0.0, spread_coefficient=0.0)

    breakdown = entry_threshold(inputs(), no_costs_cfg, tracker)

    assert breakdown.win_rate_shift == pytest.approx(-0.02)
    assert breakdown.total == 0.0


def test_small_sample_moves_the_posterior_only_a_little() -> None:
    # Arrange: two losses barely move a 100-pseudo-trade prior (the point of the Beta prior).
    tracker = WinRateTracker(CFG, [False, False])

    shift = tracker.shift()

    assert shift == pytest.approx(0.5 - 50 / 102)
    assert 0 < shift < CFG.win_rate_band


def test_tracker_keeps_only_the_recent_window() -> None:
    tracker = WinRateTracker(DecisionConfig(win_rate_window=5), [False] * 10)

    tracker.record(True)

    assert tracker.trades == 5
    assert tracker.wins == 1


@pytest.mark.parametrize(
    "bad",
    [{"p_win": math.nan}, {"p_win": 1.2}, {"fees": -0.001}, {"volatility": math.inf}],
)
def test_invalid_model_output_never_enters(bad: dict[str, float]) -> None:
    decision = decide_entry(inputs(**bad), CFG)

    assert not decision.enter
    assert decision.reason.startswith("invalid input")


finite = st.floats(min_value=0.0, max_value=0.05, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    p=st.floats(min_value=0.0, max_value=1.0),
    win=finite,
    loss=finite,
    fees=finite,
    slip=finite,
    spread=finite,
    vol=finite,
    outcomes=st.lists(st.booleans(), max_size=60),
)
def test_property_never_enters_without_positive_expected_value(
    p: float,
    win: float,
    loss: float,
    fees: float,
    slip: float,
    spread: float,
    vol: float,
    outcomes: list[bool],
) -> None:
    tracker = WinRateTracker(CFG, outcomes)
    trade = EntryInputs(p, win, loss, fees, slip, spread, vol)

    decision = decide_entry(trade, CFG, tracker)

    assert abs(tracker.shift()) <= CFG.win_rate_band + 1e-12
    if decision.enter:
        assert decision.expected_value > 0
        assert decision.expected_value > decision.threshold >= 0
