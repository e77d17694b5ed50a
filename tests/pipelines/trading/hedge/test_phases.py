"""Progressive sizing: up after 3 consecutive clean cycles, down after 2 consecutive failures."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pipelines.trading.hedge.config import HedgeConfig
from pipelines.trading.hedge.phases import Outcome, PhaseState, record_outcome

CFG = HedgeConfig()


def run(outcomes: list[Outcome], state: PhaseState | None = None) -> PhaseState:
    state = state or PhaseState()
    for outcome in outcomes:
        state, _ = record_outcome(state, outcome, CFG)
    return state


def test_default_phases_are_the_spec_notionals() -> None:
    assert CFG.phases == tuple(Decimal(v) for v in ("10", "20", "50", "100", "200", "500"))


def test_three_clean_cycles_step_up_and_reset_the_counters() -> None:
    state, change = record_outcome(run([Outcome.CLEAN] * 2), Outcome.CLEAN, CFG)
    assert state == PhaseState(index=1) and change is not None
    assert (change.old_notional, change.new_notional, change.direction) == (Decimal(10), Decimal(20), "up")


def test_a_failure_breaks_the_clean_streak() -> None:
    assert run([Outcome.CLEAN, Outcome.CLEAN, Outcome.UNWOUND, Outcome.CLEAN]).index == 0


def test_two_failures_step_down_and_no_fill_is_neutral() -> None:
    top = PhaseState(index=3)
    assert run([Outcome.UNWOUND, Outcome.NO_FILL, Outcome.FAILED], top) == PhaseState(index=2)
    assert run([Outcome.UNWOUND, Outcome.CLEAN, Outcome.UNWOUND], top).index == 3


def test_phase_stays_within_the_configured_range() -> None:
    assert run([Outcome.CLEAN] * 40).index == len(CFG.phases) - 1
    assert run([Outcome.FAILED] * 10).index == 0


def test_serialises_and_clamps_an_out_of_range_index() -> None:
    state = PhaseState(2, 1, 0)
    assert PhaseState.from_dict(state.to_dict(), CFG) == state
    assert PhaseState.from_dict({"index": 99}, CFG).index == len(CFG.phases) - 1


@given(st.lists(st.sampled_from(list(Outcome)), max_size=60))
def test_phase_moves_at_most_one_step_per_cycle(outcomes: list[Outcome]) -> None:
    state = PhaseState()
    for outcome in outcomes:
        nxt, change = record_outcome(state, outcome, CFG)
        assert abs(nxt.index - state.index) <= 1
        assert (change is None) == (nxt.index == state.index)
        assert 0 <= nxt.index < len(CFG.phases)
        state = nxt
