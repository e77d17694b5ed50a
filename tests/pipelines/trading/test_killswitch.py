"""One scenario per kill switch of SPEC 10, each test named after its switch, plus the plumbing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from pipelines.trading.config import DeploymentConfig, KillSwitchConfig
from pipelines.trading.killswitch import (
    Action,
    GuardState,
    RiskGuard,
    RiskSnapshot,
    Switch,
    SymbolRisk,
)

D = Decimal
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
GRADUATED = KillSwitchConfig(deployment=DeploymentConfig(active_phase=None))


def healthy(**overrides: object) -> RiskSnapshot:
    snap = RiskSnapshot(
        equity=D("10000"),
        day_start_equity=D("10000"),
        peak_equity=D("10000"),
        symbols=(
            SymbolRisk("BTC/USDT", exposure=D("1000"), hurst=0.65, spread=0.0002, spread_norm=0.0002),
            SymbolRisk("ETH/USDT", exposure=D("1000"), hurst=0.62, volume=100.0, volume_norm=100.0),
            SymbolRisk("SOL/USDT", exposure=D("1000")),
            SymbolRisk("XRP/USDT", exposure=D("1000")),
        ),
        api_requests=1000,
        api_errors=1,
        calibration_error=0.04,
        drift_p_value=0.4,
        inference_p99_ms=3.0,
        memory_bytes=150 * 1024 * 1024,
        live_pnl=D("100"),
        simulated_pnl=D("101"),
    )
    return replace(snap, **overrides)  # type: ignore[arg-type]


def guard(cfg: KillSwitchConfig = GRADUATED) -> RiskGuard:
    return RiskGuard(cfg)


def test_healthy_snapshot_allows_entries_at_full_size() -> None:
    verdict = guard().evaluate(healthy(), T0)

    assert verdict.allow_entries
    assert verdict.size_multiplier == 1.0
    assert verdict.triggers == ()
    assert verdict.actions == frozenset()


# ---- one scenario per switch ------------------------------------------------------------------------
def test_daily_loss() -> None:
    # Arrange: -5.0% on the day.
    snap = healthy(equity=D("9500"), peak_equity=D("10000"))

    # Act
    verdict = guard().evaluate(snap, T0)

    # Assert
    assert not verdict.allow_entries
    assert Switch.DAILY_LOSS in verdict.active
    assert not guard().evaluate(healthy(equity=D("9501")), T0).active & {Switch.DAILY_LOSS}


def test_daily_loss_limit_is_configurable_only_within_minus_eight_percent_and_zero() -> None:
    assert KillSwitchConfig(daily_loss_limit=-0.08).daily_loss_limit == -0.08
    with pytest.raises(ValidationError, match="within"):
        KillSwitchConfig(daily_loss_limit=-0.09)
    with pytest.raises(ValidationError, match="within"):
        KillSwitchConfig(daily_loss_limit=0.0)


def test_max_drawdown() -> None:
    # Arrange: 20% below the peak.
    risk = guard()
    snap = healthy(equity=D("8000"), day_start_equity=D("8100"), peak_equity=D("10000"))

    # Act
    verdict = risk.evaluate(snap, T0)
    recovered = risk.evaluate(healthy(), T0 + timedelta(minutes=1))

    # Assert: flatten and halt, and the halt stays latched after equity recovers.
    assert {Action.FLATTEN, Action.HALT} <= verdict.actions
    assert not verdict.allow_entries
    assert not recovered.allow_entries
    risk.reset_halt()
    assert risk.evaluate(healthy(), T0 + timedelta(minutes=2)).allow_entries


def test_consecutive_losses() -> None:
    # Arrange: three losing trades.
    risk = guard()
    for i in range(3):
        risk.record_trade_result(D("-5"), T0 + timedelta(minutes=i))

    # Act
    paused = risk.evaluate(healthy(), T0 + timedelta(minutes=30))
    resumed = risk.evaluate(healthy(), T0 + timedelta(minutes=2, hours=1))

    # Assert: paused for one hour from the third loss.
    assert not paused.allow_entries
    assert Switch.CONSECUTIVE_LOSSES in paused.active
    assert paused.paused_until == T0 + timedelta(minutes=2, hours=1)
    assert resumed.allow_entries


def test_consecutive_losses_reduce() -> None:
    # Arrange: ten losses; the pause from the tenth has run out.
    risk = guard()
    for i in range(10):
        risk.record_trade_result(D("-1"), T0 + timedelta(minutes=i))

    # Act
    verdict = risk.evaluate(healthy(), T0 + timedelta(hours=2))
    risk.record_trade_result(D("3"), T0 + timedelta(hours=2, minutes=1))
    after_win = risk.evaluate(healthy(), T0 + timedelta(hours=2, minutes=2))

    # Assert
    assert verdict.allow_entries
    assert verdict.size_multiplier == 0.5
    assert after_win.size_multiplier == 1.0


def test_losing_days() -> None:
    # Arrange: three losing UTC days in a row.
    risk = guard()
    for day in range(3):
        risk.record_day_result(D("-50"), T0 + timedelta(days=day))

    # Act
    verdict = risk.evaluate(healthy(), T0 + timedelta(days=2, hours=1))

    # Assert
    assert not verdict.allow_entries
    assert Switch.LOSING_DAYS in verdict.active


def test_losing_days_streak_is_broken_by_a_winning_day() -> None:
    risk = guard()
    for pnl in (D("-50"), D("-50"), D("10"), D("-50")):
        risk.record_day_result(pnl, T0)

    assert risk.evaluate(healthy(), T0).allow_entries


def test_hurst_random_walk() -> None:
    snap = healthy(symbols=(SymbolRisk("BTC/USDT", hurst=0.5), SymbolRisk("ETH/USDT", hurst=0.7)))

    verdict = guard().evaluate(snap, T0)

    assert verdict.allow_entries
    assert not verdict.can_enter("BTC/USDT")
    assert verdict.can_enter("ETH/USDT")


def test_api_error_rate() -> None:
    # Arrange: 5 errors in 100 requests = 5%.
    risk = guard()

    # Act
    verdict = risk.evaluate(healthy(api_requests=100, api_errors=5), T0)
    still = risk.evaluate(healthy(), T0 + timedelta(minutes=29))
    later = risk.evaluate(healthy(), T0 + timedelta(minutes=30))

    # Assert: 30 minutes, even after the rate recovers.
    assert not verdict.allow_entries
    assert not still.allow_entries
    assert later.allow_entries


def test_api_error_rate_ignores_a_tiny_sample() -> None:
    verdict = guard().evaluate(healthy(api_requests=3, api_errors=1), T0)

    assert verdict.allow_entries


def test_calibration() -> None:
    verdict = guard().evaluate(healthy(calibration_error=0.16), T0)

    assert verdict.allow_entries
    assert Action.RETRAIN in verdict.actions
    assert verdict.size_multiplier == 0.5


def test_feature_drift() -> None:
    verdict = guard().evaluate(healthy(drift_p_value=0.001), T0)

    assert Action.RETRAIN in verdict.actions
    assert verdict.size_multiplier == 0.5


def test_symbol_concentration() -> None:
    # Arrange: BTC is 40% of gross exposure.
    snap = healthy(
        symbols=(
            SymbolRisk("BTC/USDT", exposure=D("2000")),
            SymbolRisk("ETH/USDT", exposure=D("1500")),
            SymbolRisk("SOL/USDT", exposure=D("1500")),
        )
    )

    verdict = guard().evaluate(snap, T0)

    assert not verdict.can_enter("BTC/USDT")
    assert verdict.can_enter("ETH/USDT")


def test_leverage() -> None:
    # Arrange: 16,000 of exposure on 10,000 of equity.
    snap = healthy(symbols=tuple(SymbolRisk(f"S{i}/USDT", exposure=D("4000")) for i in range(4)))

    verdict = guard().evaluate(snap, T0)

    assert Action.REDUCE_LEVERAGE in verdict.actions
    assert not verdict.allow_entries


def test_abnormal_spread() -> None:
    snap = healthy(symbols=(SymbolRisk("BTC/USDT", spread=0.0007, spread_norm=0.0002),))

    verdict = guard().evaluate(snap, T0)

    assert not verdict.can_enter("BTC/USDT")
    assert Switch.ABNORMAL_SPREAD in verdict.active


def test_thin_volume() -> None:
    snap = healthy(symbols=(SymbolRisk("ETH/USDT", volume=40.0, volume_norm=100.0),))

    verdict = guard().evaluate(snap, T0)

    assert not verdict.can_enter("ETH/USDT")
    assert Switch.THIN_VOLUME in verdict.active


def test_zombie_orders() -> None:
    five = guard().evaluate(healthy(zombie_orders=5), T0)
    six = guard().evaluate(healthy(zombie_orders=6), T0)

    assert Action.CANCEL_ALL not in five.actions
    assert Action.CANCEL_ALL in six.actions


def test_slow_inference() -> None:
    verdict = guard().evaluate(healthy(inference_p99_ms=12.5), T0)

    assert Action.DEGRADE_TO_TABULAR in verdict.actions
    assert verdict.allow_entries


def test_memory() -> None:
    verdict = guard().evaluate(healthy(memory_bytes=300 * 1024 * 1024), T0)

    assert Action.SHED_CACHES in verdict.actions


def test_store_errors() -> None:
    risk = guard()

    three = risk.evaluate(healthy(store_errors=3), T0)
    four = risk.evaluate(healthy(store_errors=4), T0)
    later = risk.evaluate(healthy(), T0 + timedelta(minutes=15))

    assert three.allow_entries
    assert not four.allow_entries
    assert four.paused_until == T0 + timedelta(minutes=15)
    assert later.allow_entries


def test_pnl_gap() -> None:
    # Arrange: live 85 vs simulated 100 is a 15% gap.
    verdict = guard().evaluate(healthy(live_pnl=D("85"), simulated_pnl=D("100")), T0)

    assert Switch.PNL_GAP in verdict.active
    assert Action.ALERT in verdict.actions
    assert verdict.allow_entries


@pytest.mark.parametrize(("api_flag", "pause_file"), [(True, False), (False, True), (True, True)])
def test_manual(api_flag: bool, pause_file: bool) -> None:
    verdict = guard().evaluate(healthy(manual_kill=api_flag, pause_file_present=pause_file), T0)

    assert not verdict.allow_entries
    assert Switch.MANUAL in verdict.active


def test_deployment_phase() -> None:
    # Arrange: phase 1 is the default: $200 bankroll, $20 per trade, $10 daily loss.
    risk = RiskGuard(KillSwitchConfig())

    # Act
    fine = risk.evaluate(
        healthy(equity=D("195"), day_start_equity=D("200"), peak_equity=D("200"), symbols=()), T0
    )
    spent = risk.evaluate(
        healthy(equity=D("190"), day_start_equity=D("200"), peak_equity=D("200"), symbols=()), T0
    )

    # Assert
    assert fine.max_trade_notional == D("20")
    assert fine.bankroll_cap == D("200")
    assert fine.allow_entries
    assert not spent.allow_entries
    assert Switch.PHASE_DAILY_LOSS in spent.active


# ---- plumbing ------------------------------------------------------------------------------------------
def test_alert_is_raised_only_when_a_switch_newly_fires() -> None:
    risk = guard()

    first = risk.evaluate(healthy(manual_kill=True), T0)
    second = risk.evaluate(healthy(manual_kill=True), T0 + timedelta(seconds=1))

    assert first.newly_fired == {Switch.MANUAL}
    assert Action.ALERT in first.actions
    assert second.newly_fired == frozenset()
    assert Action.ALERT not in second.actions


def test_reasons_are_human_readable() -> None:
    verdict = guard().evaluate(healthy(equity=D("9400")), T0)

    assert any("daily PnL -6.00%" in reason for reason in verdict.reasons)


def test_config_rejects_unknown_keys_and_is_frozen() -> None:
    # A misspelt key must fail at load, not leave the default limit silently in force.
    with pytest.raises(ValidationError, match="daily_los_limit"):
        KillSwitchConfig.model_validate({"daily_los_limit": -0.02})
    cfg = KillSwitchConfig()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.max_drawdown = 0.5  # type: ignore[misc]


def test_state_survives_a_restart() -> None:
    risk = guard()
    for i in range(3):
        risk.record_trade_result(D("-1"), T0 + timedelta(minutes=i))

    restored = RiskGuard(GRADUATED, GuardState(**vars(risk.state)))

    assert not restored.evaluate(healthy(), T0 + timedelta(minutes=10)).allow_entries


def test_pnl_gap_floor_in_quote_currency_keeps_tiny_pnls_quiet() -> None:
    # Arrange: live 0.01 vs simulated 0.05 is an 80% gap of cents; the floor of 10 USDT makes it 0.4%
    cfg = GRADUATED.model_copy(update={"pnl_gap_floor_quote": 10.0, "pnl_gap_floor_fraction": 0.0})
    quiet = guard(cfg).evaluate(healthy(live_pnl=D("0.01"), simulated_pnl=D("0.05")), T0)
    loud = guard(cfg).evaluate(healthy(live_pnl=D("8"), simulated_pnl=D("20")), T0)

    assert Switch.PNL_GAP not in quiet.active
    assert Switch.PNL_GAP in loud.active  # 12 / max(20, 10) = 60%
