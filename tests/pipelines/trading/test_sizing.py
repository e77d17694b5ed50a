"""Adaptive Kelly sizing scenarios (SPEC 9) and the caps that must never be exceeded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.trading.config import SizingConfig
from pipelines.trading.instruments import UPBIT_KRW_MIN_ORDER, UPBIT_KRW_TICKS_2025_07_31, MarketInfo, Side
from pipelines.trading.sizing import (
    AdaptiveKelly,
    OpenPositionRef,
    SizingInputs,
    binary_kelly,
    kelly_fraction,
    open_positions_multiplier,
    positions_to_halve,
    regime_factor,
    size_binary,
    size_position,
)

D = Decimal
CFG = SizingConfig()
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def usdt_market() -> MarketInfo:
    return MarketInfo("BTC/USDT", "BTCUSDT", D("0.01"), D("0.00001"), D("5"), D("0.001"), D("0.001"))


def krw_market() -> MarketInfo:
    return MarketInfo(
        "XRP/KRW", "KRW-XRP", D("1"), D("0.00000001"), UPBIT_KRW_MIN_ORDER, D("0.0005"), D("0.0005"),
        tick_table=UPBIT_KRW_TICKS_2025_07_31,
    )  # fmt: skip


def inputs(**overrides: object) -> SizingInputs:
    base = SizingInputs(
        side=Side.BUY,
        equity=D("10000"),
        price=D("50000"),
        confidence=1.0,
        is_major=True,
        open_positions=0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


# ---- adaptive Kelly ---------------------------------------------------------------------------------
def feed(kelly: AdaptiveKelly, returns: list[float]) -> None:
    for r in returns:
        kelly.record_trade(r)


def test_kelly_formula_for_a_win_loss_bet() -> None:
    assert kelly_fraction(0.6, 1.0) == pytest.approx(0.2)
    assert kelly_fraction(0.5, 2.0) == pytest.approx(0.25)
    assert kelly_fraction(0.4, 1.0) < 0


def test_kelly_keeps_initial_fraction_until_fifty_closed_trades() -> None:
    # Arrange
    kelly = AdaptiveKelly(CFG)

    # Act
    feed(kelly, [0.01] * 49)

    # Assert
    assert kelly.fraction == CFG.initial_kelly_fraction
    assert kelly.last_calibration is None


def test_kelly_recalibrates_at_fifty_trades_with_point_nine_smoothing() -> None:
    # Arrange: 30 wins of +1%, 20 losses of -1% -> W=0.6, R=1, full Kelly 0.2.
    kelly = AdaptiveKelly(CFG)

    # Act
    feed(kelly, [0.01] * 30 + [-0.01] * 20)

    # Assert: 0.9 x 0.05 + 0.1 x 0.2
    assert kelly.last_calibration is not None
    assert kelly.last_calibration.raw_kelly == pytest.approx(0.2)
    assert kelly.fraction == pytest.approx(0.9 * 0.05 + 0.1 * 0.2)


def test_kelly_is_capped_even_when_every_trade_wins() -> None:
    kelly = AdaptiveKelly(CFG)

    feed(kelly, [0.02] * 5000)

    assert kelly.fraction <= CFG.kelly_cap
    assert kelly.fraction == pytest.approx(CFG.kelly_cap, rel=1e-3)


def test_kelly_decays_towards_zero_without_edge() -> None:
    kelly = AdaptiveKelly(CFG)

    feed(kelly, [-0.01] * 200)

    assert kelly.fraction == pytest.approx(0.05 * 0.9**4)


def test_kelly_recalibration_reads_only_the_last_two_hundred_trades() -> None:
    # Arrange: 200 old wins, then 200 losses: the last recalibration sees only losses.
    kelly = AdaptiveKelly(CFG)
    feed(kelly, [0.01] * 200 + [-0.01] * 200)

    # Assert
    assert kelly.last_calibration is not None
    assert kelly.last_calibration.trades == 200
    assert kelly.last_calibration.win_rate == 0.0


def test_kelly_state_survives_a_restart() -> None:
    kelly = AdaptiveKelly(CFG)
    feed(kelly, [0.01] * 30 + [-0.01] * 45)

    restored = AdaptiveKelly(CFG, kelly.state())
    feed(restored, [0.01] * 25)
    feed(kelly, [0.01] * 25)

    assert restored.fraction == kelly.fraction
    assert restored.last_calibration is not None


def test_kelly_refuses_nan_returns() -> None:
    with pytest.raises(ValueError, match="finite"):
        AdaptiveKelly(CFG).record_trade(float("nan"))


# ---- factors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("vpin", "kyle", "kyle_p80", "expected"),
    [
        (0.5, 1.0, 2.0, 1.0),
        (0.71, 1.0, 2.0, 0.3),
        (0.5, 2.5, 2.0, 0.6),
        (0.9, 2.5, 2.0, 0.3 * 0.6),
        (None, None, None, 1.0),
        (float("nan"), None, None, 0.3),
    ],
)
def test_regime_factor(
    vpin: float | None, kyle: float | None, kyle_p80: float | None, expected: float
) -> None:
    factor, _notes = regime_factor(vpin, kyle, kyle_p80, CFG)

    assert factor == pytest.approx(expected)


@pytest.mark.parametrize(("n", "mult"), [(0, 1.0), (1, 0.8), (3, 0.8), (4, 0.4), (5, 0.4), (6, None)])
def test_open_positions_multiplier(n: int, mult: float | None) -> None:
    assert open_positions_multiplier(n, CFG) == mult


# ---- size_position scenarios ---------------------------------------------------------------------------
def test_size_scales_with_kelly_and_confidence() -> None:
    # Arrange: 0.2 x 0.5 = 10% of 10,000 = 1,000 USDT at 50,000.
    result = size_position(0.2, inputs(confidence=0.5), usdt_market(), CFG)

    assert result.reason is None
    assert result.size == D("0.02")
    assert result.notional == D("1000.00")


def test_major_trade_is_capped_at_twelve_percent_of_equity() -> None:
    result = size_position(0.35, inputs(), usdt_market(), CFG)

    assert result.notional == D("1200")
    assert ("per_trade_cap", 0.12) in result.factors


def test_alt_trade_is_capped_at_eight_percent_of_equity() -> None:
    result = size_position(0.35, inputs(is_major=False, price=D("100")), usdt_market(), CFG)

    assert result.notional == D("800")


def test_no_new_entry_with_more_than_five_open_positions() -> None:
    result = size_position(0.2, inputs(open_positions=6), usdt_market(), CFG)

    assert result.size == 0
    assert result.reason is not None and "no new entry" in result.reason


def test_toxic_flow_and_crowding_multiply_down() -> None:
    # Arrange: 0.2 x VPIN 0.3 x Kyle 0.6 x (4 open: 0.4) = 0.0144.
    result = size_position(
        0.2,
        inputs(vpin=0.8, kyle_lambda=3.0, kyle_lambda_threshold=1.0, open_positions=4),
        usdt_market(),
        CFG,
    )

    assert result.fraction == pytest.approx(0.2 * 0.3 * 0.6 * 0.4)
    assert result.notional == D("144.00")


def test_correlated_new_position_is_halved() -> None:
    plain = size_position(0.1, inputs(open_positions=1), usdt_market(), CFG)
    correlated = size_position(
        0.1, inputs(open_positions=1, max_correlation_with_open=0.85), usdt_market(), CFG
    )

    assert correlated.notional * 2 == plain.notional


def test_deployment_phase_caps_bankroll_and_trade_notional() -> None:
    # Arrange: phase 1 caps: $200 bankroll, $20 per trade.
    result = size_position(
        0.35,
        inputs(equity=D("100000"), bankroll_cap=D("200"), max_trade_notional=D("20")),
        usdt_market(),
        CFG,
    )

    assert result.notional <= D("20")
    assert result.notional == D("20")


def test_size_below_venue_minimum_is_zero_with_reason() -> None:
    # Arrange: 0.01 x 0.3 x 1,000 = 3 USDT < 5 USDT minimum.
    result = size_position(0.01, inputs(equity=D("1000"), price=D("100"), confidence=0.3), usdt_market(), CFG)

    assert result.size == 0
    assert result.reason is not None and "below venue minimum" in result.reason


def test_small_upbit_account_is_raised_to_the_minimum_when_confident() -> None:
    # Arrange: 30,000 KRW account; 8% of it is 2,400 KRW < 5,000 KRW minimum.
    sized = size_position(
        0.35,
        inputs(equity=D("30000"), price=D("3000"), confidence=0.7, is_major=False),
        krw_market(),
        CFG,
        available_notional=D("30000"),
    )

    assert sized.reason is None
    assert sized.notional >= D("5500")
    assert sized.note is not None


def test_zero_risk_multiplier_stops_the_entry() -> None:
    result = size_position(0.2, inputs(risk_multiplier=0.0), usdt_market(), CFG)

    assert result.size == 0
    assert result.reason is not None


def test_newer_of_two_correlated_positions_is_halved() -> None:
    positions = [
        OpenPositionRef("BTC/USDT", T0),
        OpenPositionRef("ETH/USDT", T0 + timedelta(minutes=5)),
        OpenPositionRef("XRP/USDT", T0 + timedelta(minutes=1)),
    ]
    corr = {("BTC/USDT", "ETH/USDT"): 0.9, ("XRP/USDT", "BTC/USDT"): 0.3}

    assert positions_to_halve(positions, corr, CFG) == frozenset({"ETH/USDT"})


# ---- binary window markets -------------------------------------------------------------------------------
def test_binary_quarter_kelly() -> None:
    # edge 0.6 - 0.5 = 0.1; f = 0.25 x 0.1 / 0.5 = 0.05
    fraction, reason = binary_kelly(0.6, 0.5, CFG)

    assert reason is None
    assert fraction == pytest.approx(0.05)


def test_binary_without_edge_does_not_trade() -> None:
    fraction, reason = binary_kelly(0.45, 0.5, CFG)

    assert fraction == 0.0
    assert reason is not None and "no edge" in reason


def test_binary_size_is_shares_rounded_down() -> None:
    market = MarketInfo("BTC-UP", "0xabc", D("0.01"), D("1"), D("1"), D("0"), D("0"))

    result = size_binary(0.6, D("0.5"), D("1000"), market, CFG)

    assert result.size == D("100")  # 5% of 1,000 = 50 USDC at 0.5 -> 100 shares


# ---- properties ------------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    kelly=st.floats(min_value=0.0, max_value=1.0),
    equity=st.decimals(min_value=D("1"), max_value=D("10000000"), places=2),
    price=st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2),
    confidence=st.floats(min_value=0.0, max_value=1.0),
    is_major=st.booleans(),
    open_positions=st.integers(min_value=0, max_value=8),
    vpin=st.none() | st.floats(min_value=0.0, max_value=1.0),
    max_trade=st.none() | st.decimals(min_value=D("1"), max_value=D("1000"), places=2),
    side=st.sampled_from(Side),
)
def test_property_size_caps_are_never_exceeded(
    kelly: float,
    equity: Decimal,
    price: Decimal,
    confidence: float,
    is_major: bool,
    open_positions: int,
    vpin: float | None,
    max_trade: Decimal | None,
    side: Side,
) -> None:
    market = usdt_market()
    sized_in = inputs(
        side=side,
        equity=equity,
        price=price,
        confidence=confidence,
        is_major=is_major,
        open_positions=open_positions,
        vpin=vpin,
        max_trade_notional=max_trade,
    )

    result = size_position(kelly, sized_in, market, CFG)

    cap = CFG.max_trade_fraction_major if is_major else CFG.max_trade_fraction_alt
    assert result.notional <= equity * Decimal(repr(cap))
    if max_trade is not None:
        assert result.notional <= max_trade
    assert result.size % market.lot_size == 0
    if result.size > 0:
        assert result.notional >= market.min_notional
        assert result.reason is None
    else:
        assert result.reason
    if open_positions > 5:
        assert result.size == 0
