"""The promotion decision: scenarios plus the property that a worse challenger never wins."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipelines.config import PromotionConfig
from pipelines.promotion import ModelScore, promote_if_better

CONFIG = PromotionConfig()
GOOD = ModelScore(brier=0.245, ece=0.01, accuracy=0.53, sharpe=1.2)


def test_better_challenger_wins() -> None:
    champion = ModelScore(brier=0.249, ece=0.02, accuracy=0.52, sharpe=0.8)
    decision = promote_if_better(GOOD, champion, validation_passed=True, config=CONFIG)
    assert decision.promote, decision.summary


def test_first_model_is_promoted_when_bootstrap_is_allowed() -> None:
    weak = ModelScore(brier=0.26, ece=0.04, accuracy=0.5, sharpe=-1.0)
    assert promote_if_better(weak, None, validation_passed=True, config=CONFIG).promote
    strict = PromotionConfig(bootstrap_without_champion=False)
    decision = promote_if_better(weak, None, validation_passed=True, config=strict)
    assert not decision.promote and any("sharpe" in r for r in decision.reasons)


def test_leakage_and_failed_validation_always_block() -> None:
    leaky = ModelScore(brier=0.2, ece=0.01, accuracy=0.65, sharpe=5.0)
    for champion in (None, GOOD):
        decision = promote_if_better(leaky, champion, validation_passed=True, config=CONFIG)
        assert not decision.promote and any("leakage" in r for r in decision.reasons)
        decision = promote_if_better(GOOD, champion, validation_passed=False, config=CONFIG)
        assert not decision.promote and "data validation failed" in decision.reasons


def test_sharpe_below_half_blocks_even_against_a_worse_champion() -> None:
    champion = ModelScore(brier=0.26, ece=0.02, accuracy=0.5, sharpe=0.1)
    challenger = ModelScore(brier=0.25, ece=0.02, accuracy=0.51, sharpe=0.4)
    decision = promote_if_better(challenger, champion, validation_passed=True, config=CONFIG)
    assert not decision.promote and any("required 0.50" in r for r in decision.reasons)


scores = st.builds(
    ModelScore,
    brier=st.floats(0.0, 0.5, allow_nan=False),
    ece=st.floats(0.0, 0.2, allow_nan=False),
    accuracy=st.floats(0.3, 0.7, allow_nan=False),
    sharpe=st.floats(-5, 5, allow_nan=False),
)


@given(champion=scores, challenger=scores)
def test_a_challenger_worse_on_any_gated_metric_never_wins(
    champion: ModelScore, challenger: ModelScore
) -> None:
    decision = promote_if_better(challenger, champion, validation_passed=True, config=CONFIG)
    worse = (
        challenger.brier > champion.brier
        or challenger.sharpe < max(0.5, champion.sharpe)
        or challenger.ece > CONFIG.max_ece
        or challenger.accuracy > CONFIG.leakage_accuracy
    )
    if worse:
        assert not decision.promote
    else:
        assert decision.promote


@given(challenger=scores, validation_passed=st.booleans())
def test_without_a_champion_only_validation_and_leakage_decide(challenger: ModelScore, validation_passed: bool) -> None:
    decision = promote_if_better(challenger, None, validation_passed=validation_passed, config=CONFIG)
    assert decision.promote == (validation_passed and challenger.accuracy <= CONFIG.leakage_accuracy)
    assert decision.reasons  # every decision says why


# ---- too few trades for a Sharpe estimate (issue 16) -------------------------------------------------
MIN_TRADES = 30


def test_a_challenger_with_too_few_trades_is_judged_on_the_trading_check_and_the_rest() -> None:
    champion = ModelScore(brier=0.249, ece=0.02, accuracy=0.52, sharpe=0.0, trades=0, total_return=0.0)
    quiet = ModelScore(brier=0.248, ece=0.02, accuracy=0.52, sharpe=0.0, trades=3, total_return=0.001)

    decision = promote_if_better(quiet, champion, validation_passed=True, config=CONFIG, min_trades=MIN_TRADES)

    assert decision.promote and decision.tradeable, decision.summary
    assert any("sharpe not estimated: 3 backtest trades < 30" in r for r in decision.reasons)
    losing = ModelScore(brier=0.248, ece=0.02, accuracy=0.52, sharpe=0.0, trades=3, total_return=-0.001)
    refused = promote_if_better(losing, champion, validation_passed=True, config=CONFIG, min_trades=MIN_TRADES)
    assert not refused.promote and "trading check" in refused.summary


def test_trading_less_never_dodges_a_champion_that_earns() -> None:
    earner = ModelScore(brier=0.249, ece=0.02, accuracy=0.52, sharpe=1.5, trades=200, total_return=0.02)
    idle = ModelScore(brier=0.240, ece=0.01, accuracy=0.52, sharpe=0.0, trades=0, total_return=0.0)
    decision = promote_if_better(idle, earner, validation_passed=True, config=CONFIG, min_trades=MIN_TRADES)
    assert not decision.promote and "required >= +2.0000%" in decision.summary


def test_a_bootstrap_champion_serves_but_is_tradeable_only_after_the_full_gate() -> None:
    weak = ModelScore(brier=0.26, ece=0.04, accuracy=0.5, sharpe=-15.8, trades=400, total_return=-0.05)
    first = promote_if_better(weak, None, validation_passed=True, config=CONFIG, min_trades=MIN_TRADES)
    assert first.promote and not first.tradeable and "not tradeable" in first.summary
    quiet = ModelScore(brier=0.25, ece=0.01, accuracy=0.5, sharpe=0.0, trades=2, total_return=0.0)
    assert not promote_if_better(quiet, None, validation_passed=True, config=CONFIG, min_trades=MIN_TRADES).tradeable
    strong = ModelScore(brier=0.245, ece=0.01, accuracy=0.53, sharpe=1.2, trades=120, total_return=0.03)
    earned = promote_if_better(strong, None, validation_passed=True, config=CONFIG, min_trades=MIN_TRADES)
    assert earned.promote and earned.tradeable


traded = st.builds(
    ModelScore,
    brier=st.floats(0.0, 0.5, allow_nan=False),
    ece=st.floats(0.0, 0.2, allow_nan=False),
    accuracy=st.floats(0.3, 0.7, allow_nan=False),
    sharpe=st.floats(-5, 5, allow_nan=False),
    trades=st.integers(0, 100),
    total_return=st.floats(-0.2, 0.2, allow_nan=False),
)


@given(champion=traded, challenger=traded)
def test_with_any_trade_counts_a_worse_challenger_never_wins(champion: ModelScore, challenger: ModelScore) -> None:
    decision = promote_if_better(challenger, champion, validation_passed=True, config=CONFIG, min_trades=MIN_TRADES)
    champion_sharpe = champion.sharpe if champion.trades >= MIN_TRADES else 0.5  # type: ignore[operator]
    if challenger.trades >= MIN_TRADES:  # type: ignore[operator]
        worse_trading = challenger.sharpe < max(0.5, champion_sharpe) or (
            champion.trades < MIN_TRADES and challenger.total_return < champion.total_return  # type: ignore[operator]
        )
    else:
        worse_trading = challenger.total_return < max(0.0, champion.total_return)
    worse = (
        challenger.brier > champion.brier
        or challenger.ece > CONFIG.max_ece
        or challenger.accuracy > CONFIG.leakage_accuracy
        or worse_trading
    )
    assert decision.promote == (not worse)
    assert decision.tradeable == decision.promote  # against a champion, promotion means the full gate
    # the safety property in plain words: lower return and worse Brier than the champion never win
    if challenger.total_return < champion.total_return and challenger.brier > champion.brier:
        assert not decision.promote
