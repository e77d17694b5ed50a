"""The stateless kill-switch evaluators behind `pipelines.trading.killswitch.RiskGuard.evaluate`.

Each function reads one group of measurements from a `RiskSnapshot` and records what fired into an
`Evaluation` (triggers in firing order, actions, per-symbol blocks, the size multiplier). None of them
touches the guard's state: the stateful switches (drawdown halt latch, loss streaks, timed pauses) stay
in `RiskGuard`. Units as in `pipelines.trading.killswitch_model`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from pipelines.trading.config import KillSwitchConfig, PhaseCap
from pipelines.trading.exposure import by_underlying
from pipelines.trading.killswitch_model import Action, RiskSnapshot, Switch, SymbolRisk, Trigger


@dataclass
class Evaluation:
    """What one evaluation has found so far; `fire` appends a trigger (order is the report order)."""

    triggers: list[Trigger] = field(default_factory=list)
    actions: set[Action] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)
    multiplier: float = 1.0

    def fire(self, switch: Switch, reason: str, symbol: str | None = None) -> None:
        self.triggers.append(Trigger(switch, reason, symbol))


def check_daily_loss(snap: RiskSnapshot, cfg: KillSwitchConfig, ev: Evaluation) -> None:
    """Day PnL (vs the day-start equity) at or below the daily loss limit: no new entries."""
    if snap.day_start_equity > 0:
        day_return = float((snap.equity - snap.day_start_equity) / snap.day_start_equity)
        if day_return <= cfg.daily_loss_limit:
            ev.fire(
                Switch.DAILY_LOSS,
                f"daily PnL {day_return:.2%} <= {cfg.daily_loss_limit:.2%}: no new entries",
            )


def check_runtime_health(snap: RiskSnapshot, cfg: KillSwitchConfig, ev: Evaluation) -> None:
    """Zombie orders, slow inference and memory: each asks for a remedial action, none blocks entries."""
    if snap.zombie_orders > cfg.max_zombie_orders:
        ev.actions.add(Action.CANCEL_ALL)
        ev.fire(
            Switch.ZOMBIE_ORDERS,
            f"{snap.zombie_orders} stale orders > {cfg.max_zombie_orders}: cancel all",
        )
    if snap.inference_p99_ms is not None and (
        math.isnan(snap.inference_p99_ms) or snap.inference_p99_ms > cfg.inference_p99_limit_ms
    ):
        ev.actions.add(Action.DEGRADE_TO_TABULAR)
        ev.fire(
            Switch.SLOW_INFERENCE,
            f"inference p99 {snap.inference_p99_ms:.2f} ms > {cfg.inference_p99_limit_ms} ms: tabular tower only",
        )
    if snap.memory_bytes is not None and snap.memory_bytes > cfg.memory_limit_bytes:
        ev.actions.add(Action.SHED_CACHES)
        ev.fire(Switch.MEMORY, f"memory {snap.memory_bytes} B > limit {cfg.memory_limit_bytes} B: shed caches")


def check_model_health(snap: RiskSnapshot, cfg: KillSwitchConfig, ev: Evaluation) -> None:
    """Live calibration error and feature drift (a NaN counts as failed): retrain and shrink sizes."""
    if snap.calibration_error is not None and (
        math.isnan(snap.calibration_error) or snap.calibration_error > cfg.calibration_error_limit
    ):
        ev.multiplier *= cfg.calibration_size_factor
        ev.actions.add(Action.RETRAIN)
        ev.fire(
            Switch.CALIBRATION,
            f"live calibration error {snap.calibration_error:.3f} > {cfg.calibration_error_limit}: "
            f"retrain, sizes x{cfg.calibration_size_factor}",
        )
    if snap.drift_p_value is not None and (math.isnan(snap.drift_p_value) or snap.drift_p_value < cfg.drift_p_value):
        ev.multiplier *= cfg.drift_size_factor
        ev.actions.add(Action.RETRAIN)
        ev.fire(
            Switch.FEATURE_DRIFT,
            f"feature drift KS p={snap.drift_p_value:.2g} < {cfg.drift_p_value}: retrain, "
            f"sizes x{cfg.drift_size_factor}",
        )


def check_exposure(snap: RiskSnapshot, cfg: KillSwitchConfig, ev: Evaluation) -> None:
    """Leverage (gross / equity), then each symbol's market checks, then per-underlying concentration."""
    gross = snap.gross_exposure
    if snap.equity > 0:
        leverage = float(gross / snap.equity)
        if leverage > cfg.max_leverage:
            ev.actions.add(Action.REDUCE_LEVERAGE)
            ev.fire(Switch.LEVERAGE, f"leverage {leverage:.2f} > {cfg.max_leverage}: reduce, no new entries")
    elif gross > 0:
        ev.actions.add(Action.REDUCE_LEVERAGE)
        ev.fire(Switch.LEVERAGE, f"equity {snap.equity} <= 0 with exposure {gross}: reduce, no new entries")
    for sym in snap.symbols:
        check_symbol(sym, cfg, ev)
    check_concentration(snap.symbols, gross, snap.equity, cfg, ev)


def check_concentration(
    symbols: Iterable[SymbolRisk], gross: Decimal, equity: Decimal, cfg: KillSwitchConfig, ev: Evaluation
) -> None:
    """One underlying's net notional (across venues, spot and perpetuals) > the share of the book: stop
    adding. The book is the gross exposure, but at least `concentration_min_book_share` of equity: the
    first small position of a single-symbol strategy (a market maker's first clip) is 100% of a tiny
    book without being a concentration of capital."""
    book = max(gross, equity * Decimal(str(cfg.concentration_min_book_share)))
    if book <= 0:
        return
    limit = cfg.max_symbol_exposure_share
    for asset in by_underlying((s.symbol, s.exposure) for s in symbols).values():
        share = float(abs(asset.net) / book)
        if share > limit:
            names = sorted(asset.symbols)
            ev.blocked.update(names)
            what = names[0] if len(names) == 1 else f"{asset.asset} (net of {', '.join(names)})"
            reason = f"{what}: {share:.0%} of exposure > {limit:.0%}: stop adding"
            for name in names:
                ev.fire(Switch.SYMBOL_CONCENTRATION, reason, name)


def check_symbol(sym: SymbolRisk, cfg: KillSwitchConfig, ev: Evaluation) -> None:
    """Random-walk Hurst, abnormal spread, thin volume: each blocks entries in that symbol only."""
    if sym.hurst is not None and cfg.hurst_random_walk_low <= sym.hurst <= cfg.hurst_random_walk_high:
        ev.blocked.add(sym.symbol)
        ev.fire(
            Switch.HURST_RANDOM_WALK,
            f"{sym.symbol}: Hurst {sym.hurst:.3f} in random-walk band "
            f"[{cfg.hurst_random_walk_low}, {cfg.hurst_random_walk_high}]: no new entries",
            sym.symbol,
        )
    spread, spread_norm = sym.spread, sym.spread_norm
    if spread is not None and spread_norm and spread > cfg.spread_norm_multiple * spread_norm:
        ev.blocked.add(sym.symbol)
        ev.fire(
            Switch.ABNORMAL_SPREAD,
            f"{sym.symbol}: spread {spread:.5f} > {cfg.spread_norm_multiple}x norm {spread_norm:.5f}: no entry",
            sym.symbol,
        )
    volume, volume_norm = sym.volume, sym.volume_norm
    if volume is not None and volume_norm and volume < cfg.volume_norm_multiple * volume_norm:
        ev.blocked.add(sym.symbol)
        ev.fire(
            Switch.THIN_VOLUME,
            f"{sym.symbol}: volume {volume:.4g} < {cfg.volume_norm_multiple}x norm {volume_norm:.4g}: no entry",
            sym.symbol,
        )


def check_pnl_gap(snap: RiskSnapshot, cfg: KillSwitchConfig, ev: Evaluation) -> None:
    """|live - simulated PnL| over max(|simulated|, the equity and quote floors) above the limit: alert."""
    if snap.live_pnl is None or snap.simulated_pnl is None:
        return
    floor = max(abs(snap.equity) * Decimal(repr(cfg.pnl_gap_floor_fraction)), Decimal(repr(cfg.pnl_gap_floor_quote)))
    base = max(abs(snap.simulated_pnl), floor)
    if base > 0:
        gap = float(abs(snap.live_pnl - snap.simulated_pnl) / base)
        if gap > cfg.pnl_gap_limit:
            ev.fire(
                Switch.PNL_GAP,
                f"live PnL {snap.live_pnl} vs simulated {snap.simulated_pnl}: gap {gap:.1%} > {cfg.pnl_gap_limit:.0%}",
            )


def check_manual(snap: RiskSnapshot, ev: Evaluation) -> None:
    """The API kill flag or the pause file: no new entries, at once."""
    if snap.manual_kill or snap.pause_file_present:
        sources = [n for n, on in (("API kill", snap.manual_kill), ("pause file", snap.pause_file_present)) if on]
        ev.fire(Switch.MANUAL, f"manual stop ({' and '.join(sources)}): no new entries")


def check_phase(snap: RiskSnapshot, phase: PhaseCap | None, ev: Evaluation) -> None:
    """The deployment phase's daily loss budget spent (day-start equity - equity): no new entries."""
    if phase is None:
        return
    day_loss = snap.day_start_equity - snap.equity
    if day_loss >= phase.max_daily_loss:
        ev.fire(
            Switch.PHASE_DAILY_LOSS,
            f"{phase.name}: day loss {day_loss} >= phase budget {phase.max_daily_loss}: no new entries",
        )
