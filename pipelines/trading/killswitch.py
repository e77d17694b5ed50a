"""Every kill switch of SPEC section 10 (and the drift rule of SPEC 8) as one `RiskGuard`.

The guard is pure: it holds a little state (loss streaks, timed pauses, the drawdown halt latch) and
turns a `RiskSnapshot` plus `now` into a `RiskVerdict`. It never reads files, clocks or sockets: the
pause file's presence and the API kill flag arrive as booleans in the snapshot.

A verdict only gates *new entries* and asks for actions (flatten, halt, cancel_all, ...). Exits are
never blocked by a kill switch: reducing risk must always stay possible.

Switches and what they do (defaults from `KillSwitchConfig`):
- daily_loss: day PnL <= -5% of day-start equity -> no new entries.
- max_drawdown: drawdown from peak >= 20% -> flatten + halt, latched until `reset_halt`.
- consecutive_losses: a loss that makes the streak >= 3 -> pause entries 1 h;
  consecutive_losses_reduce: streak >= 10 -> sizes x0.5 until a win.
- losing_days: 3 losing days in a row -> pause entries (24 h from the third day's close).
- hurst_random_walk: Hurst in [0.45, 0.58] -> no new entries for that symbol.
- api_error_rate: errors / requests >= 5% (with enough requests) -> pause entries 30 min.
- calibration: live calibration error > 0.15 -> retrain, sizes x0.5.
- feature_drift (SPEC 8): KS p-value < 0.01 -> retrain, sizes x0.5.
- symbol_concentration: one underlying's net exposure (across venues, spot and perpetuals) > 30% of
  gross exposure -> stop adding to its symbols (a delta-neutral pair nets to ~0).
- leverage: gross exposure / equity > 1.5 -> reduce (and no new entries).
- abnormal_spread / thin_volume: spread > 3x norm or volume < 0.5x norm -> no entry for that symbol.
- zombie_orders: more than 5 stale orders -> cancel all.
- slow_inference: inference p99 > 10 ms -> degrade to the tabular tower.
- memory: resident memory over the limit -> shed caches.
- store_errors: more than 3 store errors -> pause entries 15 min.
- pnl_gap: |live - simulated PnL| > 10% of max(|simulated PnL|, the floors) -> alert (floors: a fraction of
  equity and an amount of quote currency, so tiny PnLs never trip it).
- manual: API kill flag or pause file -> no new entries, at once.
- phase_daily_loss: the deployment phase's daily loss budget spent -> no new entries; the phase's
  bankroll and per-trade caps are always reported in the verdict.

Units: equity, PnL and exposure are `Decimal` in the account's quote currency; rates and ratios are
float fractions; `now` is aware UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from pipelines.trading.config import KillSwitchConfig, require_utc
from pipelines.trading.exposure import by_underlying


class Switch(StrEnum):
    """Names of the kill switches (stable: used in logs, alerts and metrics)."""

    DAILY_LOSS = "daily_loss"
    MAX_DRAWDOWN = "max_drawdown"
    CONSECUTIVE_LOSSES = "consecutive_losses"
    CONSECUTIVE_LOSSES_REDUCE = "consecutive_losses_reduce"
    LOSING_DAYS = "losing_days"
    HURST_RANDOM_WALK = "hurst_random_walk"
    API_ERROR_RATE = "api_error_rate"
    CALIBRATION = "calibration"
    FEATURE_DRIFT = "feature_drift"
    SYMBOL_CONCENTRATION = "symbol_concentration"
    LEVERAGE = "leverage"
    ABNORMAL_SPREAD = "abnormal_spread"
    THIN_VOLUME = "thin_volume"
    ZOMBIE_ORDERS = "zombie_orders"
    SLOW_INFERENCE = "slow_inference"
    MEMORY = "memory"
    STORE_ERRORS = "store_errors"
    PNL_GAP = "pnl_gap"
    MANUAL = "manual"
    PHASE_DAILY_LOSS = "phase_daily_loss"


class Action(StrEnum):
    """What the runtime must do besides gating entries."""

    FLATTEN = "flatten"
    HALT = "halt"
    CANCEL_ALL = "cancel_all"
    REDUCE_LEVERAGE = "reduce_leverage"
    RETRAIN = "retrain"
    DEGRADE_TO_TABULAR = "degrade_to_tabular"
    SHED_CACHES = "shed_caches"
    ALERT = "alert"


@dataclass(frozen=True)
class SymbolRisk:
    """Per-symbol inputs. `exposure` is the signed position notional (quote currency; short < 0),
    `gross` the sum of its legs' absolute notionals (None: `abs(exposure)`). Concentration nets symbols
    of one underlying (`pipelines.trading.exposure`); leverage reads the gross.

    `spread`/`spread_norm` and `volume`/`volume_norm` are the current value and its trailing norm in
    the same units; None means unknown (the check is skipped, not failed).
    """

    symbol: str
    exposure: Decimal = Decimal(0)
    gross: Decimal | None = None
    hurst: float | None = None
    spread: float | None = None
    spread_norm: float | None = None
    volume: float | None = None
    volume_norm: float | None = None


@dataclass(frozen=True)
class RiskSnapshot:
    """The measurements a risk evaluation looks at, as of one instant.

    Counters (`api_requests`, `api_errors`, `store_errors`) are over the caller's rolling window.
    `day_start_equity` is the equity at the start of the current UTC day; `peak_equity` the running
    peak. `live_pnl`/`simulated_pnl` are the same period's PnL live and in the paper replay.
    """

    equity: Decimal
    day_start_equity: Decimal
    peak_equity: Decimal
    symbols: tuple[SymbolRisk, ...] = ()
    api_requests: int = 0
    api_errors: int = 0
    store_errors: int = 0
    calibration_error: float | None = None
    drift_p_value: float | None = None
    zombie_orders: int = 0
    inference_p99_ms: float | None = None
    memory_bytes: int | None = None
    live_pnl: Decimal | None = None
    simulated_pnl: Decimal | None = None
    manual_kill: bool = False
    pause_file_present: bool = False

    @property
    def gross_exposure(self) -> Decimal:
        return sum((abs(s.exposure) if s.gross is None else s.gross for s in self.symbols), Decimal(0))


@dataclass(frozen=True)
class Trigger:
    """One switch that is active, with a sentence a person can act on."""

    switch: Switch
    reason: str
    symbol: str | None = None


@dataclass(frozen=True)
class RiskVerdict:
    """What the risk guard allows right now.

    allow_entries: False blocks every new entry. blocked_symbols: entries blocked for those symbols
    only. size_multiplier: multiply every new size by this (product of active reductions).
    max_trade_notional / bankroll_cap: deployment-phase caps in quote currency (None: no cap).
    actions: what the runtime must do. newly_fired: switches active now that were not active at the
    previous evaluation (alert on these, not on every evaluation of a long pause).
    """

    allow_entries: bool
    blocked_symbols: frozenset[str]
    size_multiplier: float
    max_trade_notional: Decimal | None
    bankroll_cap: Decimal | None
    actions: frozenset[Action]
    triggers: tuple[Trigger, ...]
    newly_fired: frozenset[Switch]
    paused_until: datetime | None

    def can_enter(self, symbol: str) -> bool:
        """True when a new entry in `symbol` is allowed."""
        return self.allow_entries and symbol not in self.blocked_symbols

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(t.reason for t in self.triggers)

    @property
    def active(self) -> frozenset[Switch]:
        return frozenset(t.switch for t in self.triggers)


@dataclass
class GuardState:
    """The guard's persistent state (persist it so a restart does not forget a pause or a halt)."""

    consecutive_losses: int = 0
    losing_days: int = 0
    pauses: dict[Switch, datetime] = field(default_factory=dict)
    halted: bool = False
    halt_reason: str | None = None
    last_active: frozenset[Switch] = frozenset()


_BLOCKING = {
    Switch.DAILY_LOSS,
    Switch.MAX_DRAWDOWN,
    Switch.CONSECUTIVE_LOSSES,
    Switch.LOSING_DAYS,
    Switch.API_ERROR_RATE,
    Switch.LEVERAGE,
    Switch.STORE_ERRORS,
    Switch.MANUAL,
    Switch.PHASE_DAILY_LOSS,
}


class RiskGuard:
    """All kill switches; feed it trade/day results and evaluate snapshots."""

    def __init__(self, cfg: KillSwitchConfig, state: GuardState | None = None) -> None:
        self.cfg = cfg
        self.state = state if state is not None else GuardState()

    # ---- events -------------------------------------------------------------------------------
    def record_trade_result(self, net_pnl: Decimal, now: datetime) -> None:
        """A position closed with `net_pnl` (quote currency, fees included; <= 0 is a loss)."""
        now = require_utc(now)
        if net_pnl > 0:
            self.state.consecutive_losses = 0
            return
        self.state.consecutive_losses += 1
        if self.state.consecutive_losses >= self.cfg.consecutive_losses_pause:
            self._pause(Switch.CONSECUTIVE_LOSSES, now, self.cfg.consecutive_losses_pause_seconds)

    def record_day_result(self, day_pnl: Decimal, day_end: datetime) -> None:
        """A UTC trading day closed with `day_pnl`; three losing days in a row pause entries."""
        day_end = require_utc(day_end, "day_end")
        if day_pnl >= 0:
            self.state.losing_days = 0
            return
        self.state.losing_days += 1
        if self.state.losing_days >= self.cfg.losing_days_pause:
            self._pause(Switch.LOSING_DAYS, day_end, self.cfg.losing_days_pause_seconds)

    def reset_halt(self) -> None:
        """Clear the drawdown halt: a deliberate, manual act (the API calls this, nothing automatic)."""
        self.state.halted = False
        self.state.halt_reason = None

    def _pause(self, switch: Switch, now: datetime, seconds: float) -> None:
        until = now + timedelta(seconds=seconds)
        current = self.state.pauses.get(switch)
        if current is None or until > current:
            self.state.pauses[switch] = until

    # ---- evaluation ---------------------------------------------------------------------------
    def evaluate(self, snap: RiskSnapshot, now: datetime) -> RiskVerdict:
        """Evaluate every switch against `snap` at `now` (may start timed pauses or the halt latch)."""
        now = require_utc(now)
        cfg = self.cfg
        triggers: list[Trigger] = []
        actions: set[Action] = set()
        blocked: set[str] = set()
        multiplier = 1.0

        def fire(switch: Switch, reason: str, symbol: str | None = None) -> None:
            triggers.append(Trigger(switch, reason, symbol))

        # Account-level PnL.
        if snap.day_start_equity > 0:
            day_return = float((snap.equity - snap.day_start_equity) / snap.day_start_equity)
            if day_return <= cfg.daily_loss_limit:
                fire(
                    Switch.DAILY_LOSS,
                    f"daily PnL {day_return:.2%} <= {cfg.daily_loss_limit:.2%}: no new entries",
                )
        if snap.peak_equity > 0:
            drawdown = float((snap.peak_equity - snap.equity) / snap.peak_equity)
            if drawdown >= cfg.max_drawdown and not self.state.halted:
                self.state.halted = True
                self.state.halt_reason = f"drawdown {drawdown:.2%} >= {cfg.max_drawdown:.0%}: flatten and halt"
        if self.state.halted:
            fire(Switch.MAX_DRAWDOWN, self.state.halt_reason or "halted")
            actions.update({Action.FLATTEN, Action.HALT})

        # Streaks.
        if self.state.consecutive_losses >= cfg.consecutive_losses_reduce:
            multiplier *= cfg.consecutive_losses_size_factor
            fire(
                Switch.CONSECUTIVE_LOSSES_REDUCE,
                f"{self.state.consecutive_losses} consecutive losses >= {cfg.consecutive_losses_reduce}: "
                f"sizes x{cfg.consecutive_losses_size_factor}",
            )

        # Operational health.
        if snap.api_requests >= cfg.api_error_min_requests and snap.api_requests > 0:
            rate = snap.api_errors / snap.api_requests
            if rate >= cfg.api_error_rate_limit:
                self._pause(Switch.API_ERROR_RATE, now, cfg.api_error_pause_seconds)
        if snap.store_errors > cfg.store_error_limit:
            self._pause(Switch.STORE_ERRORS, now, cfg.store_error_pause_seconds)
        if snap.zombie_orders > cfg.max_zombie_orders:
            actions.add(Action.CANCEL_ALL)
            fire(
                Switch.ZOMBIE_ORDERS,
                f"{snap.zombie_orders} stale orders > {cfg.max_zombie_orders}: cancel all",
            )
        if snap.inference_p99_ms is not None and (
            math.isnan(snap.inference_p99_ms) or snap.inference_p99_ms > cfg.inference_p99_limit_ms
        ):
            actions.add(Action.DEGRADE_TO_TABULAR)
            fire(
                Switch.SLOW_INFERENCE,
                f"inference p99 {snap.inference_p99_ms:.2f} ms > {cfg.inference_p99_limit_ms} ms: tabular tower only",
            )
        if snap.memory_bytes is not None and snap.memory_bytes > cfg.memory_limit_bytes:
            actions.add(Action.SHED_CACHES)
            fire(Switch.MEMORY, f"memory {snap.memory_bytes} B > limit {cfg.memory_limit_bytes} B: shed caches")

        # Timed pauses (started by events above or earlier).
        for switch, until in sorted(self.state.pauses.items()):
            if now < until:
                fire(switch, self._pause_reason(switch, until))
        self.state.pauses = {s: u for s, u in self.state.pauses.items() if now < u}

        # Model health.
        if snap.calibration_error is not None and (
            math.isnan(snap.calibration_error) or snap.calibration_error > cfg.calibration_error_limit
        ):
            multiplier *= cfg.calibration_size_factor
            actions.add(Action.RETRAIN)
            fire(
                Switch.CALIBRATION,
                f"live calibration error {snap.calibration_error:.3f} > {cfg.calibration_error_limit}: "
                f"retrain, sizes x{cfg.calibration_size_factor}",
            )
        if snap.drift_p_value is not None and (
            math.isnan(snap.drift_p_value) or snap.drift_p_value < cfg.drift_p_value
        ):
            multiplier *= cfg.drift_size_factor
            actions.add(Action.RETRAIN)
            fire(
                Switch.FEATURE_DRIFT,
                f"feature drift KS p={snap.drift_p_value:.2g} < {cfg.drift_p_value}: retrain, "
                f"sizes x{cfg.drift_size_factor}",
            )

        # Exposure.
        gross = snap.gross_exposure
        if snap.equity > 0:
            leverage = float(gross / snap.equity)
            if leverage > cfg.max_leverage:
                actions.add(Action.REDUCE_LEVERAGE)
                fire(Switch.LEVERAGE, f"leverage {leverage:.2f} > {cfg.max_leverage}: reduce, no new entries")
        elif gross > 0:
            actions.add(Action.REDUCE_LEVERAGE)
            fire(Switch.LEVERAGE, f"equity {snap.equity} <= 0 with exposure {gross}: reduce, no new entries")
        for sym in snap.symbols:
            self._symbol_checks(sym, gross, fire, blocked)
        self._concentration(snap.symbols, gross, snap.equity, fire, blocked)

        # PnL sanity.
        if snap.live_pnl is not None and snap.simulated_pnl is not None:
            floor = max(
                abs(snap.equity) * Decimal(repr(cfg.pnl_gap_floor_fraction)), Decimal(repr(cfg.pnl_gap_floor_quote))
            )
            base = max(abs(snap.simulated_pnl), floor)
            if base > 0:
                gap = float(abs(snap.live_pnl - snap.simulated_pnl) / base)
                if gap > cfg.pnl_gap_limit:
                    fire(
                        Switch.PNL_GAP,
                        f"live PnL {snap.live_pnl} vs simulated {snap.simulated_pnl}: gap {gap:.1%} > "
                        f"{cfg.pnl_gap_limit:.0%}",
                    )

        # Manual stop.
        if snap.manual_kill or snap.pause_file_present:
            sources = [n for n, on in (("API kill", snap.manual_kill), ("pause file", snap.pause_file_present)) if on]
            fire(Switch.MANUAL, f"manual stop ({' and '.join(sources)}): no new entries")

        # Deployment phase.
        phase = cfg.deployment.current()
        max_trade = bankroll = None
        if phase is not None:
            max_trade, bankroll = phase.max_trade_notional, phase.bankroll
            day_loss = snap.day_start_equity - snap.equity
            if day_loss >= phase.max_daily_loss:
                fire(
                    Switch.PHASE_DAILY_LOSS,
                    f"{phase.name}: day loss {day_loss} >= phase budget {phase.max_daily_loss}: no new entries",
                )

        active = frozenset(t.switch for t in triggers)
        newly = active - self.state.last_active
        self.state.last_active = active
        if newly:
            actions.add(Action.ALERT)
        allow = not any(t.switch in _BLOCKING for t in triggers)
        pause_ends = list(self.state.pauses.values())
        return RiskVerdict(
            allow_entries=allow,
            blocked_symbols=frozenset(blocked),
            size_multiplier=multiplier if allow else 0.0,
            max_trade_notional=max_trade,
            bankroll_cap=bankroll,
            actions=frozenset(actions),
            triggers=tuple(triggers),
            newly_fired=newly,
            paused_until=max(pause_ends) if pause_ends else None,
        )

    def _pause_reason(self, switch: Switch, until: datetime) -> str:
        cfg = self.cfg
        what = {
            Switch.CONSECUTIVE_LOSSES: f"{self.state.consecutive_losses} consecutive losses "
            f">= {cfg.consecutive_losses_pause}",
            Switch.LOSING_DAYS: f"{self.state.losing_days} losing days in a row >= {cfg.losing_days_pause}",
            Switch.API_ERROR_RATE: f"API error rate >= {cfg.api_error_rate_limit:.0%}",
            Switch.STORE_ERRORS: f"store errors > {cfg.store_error_limit}",
        }.get(switch, switch.value)
        return f"{what}: entries paused until {until.isoformat()}"

    def _concentration(
        self, symbols: Iterable[SymbolRisk], gross: Decimal, equity: Decimal, fire: _Fire, blocked: set[str]
    ) -> None:
        """One underlying's net notional (across venues, spot and perpetuals) > the share of the book: stop
        adding. The book is the gross exposure, but at least `concentration_min_book_share` of equity: the
        first small position of a single-symbol strategy (a market maker's first clip) is 100% of a tiny
        book without being a concentration of capital."""
        book = max(gross, equity * Decimal(str(self.cfg.concentration_min_book_share)))
        if book <= 0:
            return
        limit = self.cfg.max_symbol_exposure_share
        for asset in by_underlying((s.symbol, s.exposure) for s in symbols).values():
            share = float(abs(asset.net) / book)
            if share > limit:
                names = sorted(asset.symbols)
                blocked.update(names)
                what = names[0] if len(names) == 1 else f"{asset.asset} (net of {', '.join(names)})"
                reason = f"{what}: {share:.0%} of exposure > {limit:.0%}: stop adding"
                for name in names:
                    fire(Switch.SYMBOL_CONCENTRATION, reason, name)

    def _symbol_checks(self, sym: SymbolRisk, gross: Decimal, fire: _Fire, blocked: set[str]) -> None:
        cfg = self.cfg
        if sym.hurst is not None and cfg.hurst_random_walk_low <= sym.hurst <= cfg.hurst_random_walk_high:
            blocked.add(sym.symbol)
            fire(
                Switch.HURST_RANDOM_WALK,
                f"{sym.symbol}: Hurst {sym.hurst:.3f} in random-walk band "
                f"[{cfg.hurst_random_walk_low}, {cfg.hurst_random_walk_high}]: no new entries",
                sym.symbol,
            )
        spread, spread_norm = sym.spread, sym.spread_norm
        if spread is not None and spread_norm and spread > cfg.spread_norm_multiple * spread_norm:
            blocked.add(sym.symbol)
            fire(
                Switch.ABNORMAL_SPREAD,
                f"{sym.symbol}: spread {spread:.5f} > {cfg.spread_norm_multiple}x norm {spread_norm:.5f}: no entry",
                sym.symbol,
            )
        volume, volume_norm = sym.volume, sym.volume_norm
        if volume is not None and volume_norm and volume < cfg.volume_norm_multiple * volume_norm:
            blocked.add(sym.symbol)
            fire(
                Switch.THIN_VOLUME,
                f"{sym.symbol}: volume {volume:.4g} < {cfg.volume_norm_multiple}x norm {volume_norm:.4g}: no entry",
                sym.symbol,
            )


class _Fire(Protocol):
    """Type of the `fire` callback of `RiskGuard.evaluate`."""

    def __call__(self, switch: Switch, reason: str, symbol: str | None = None) -> None: ...
