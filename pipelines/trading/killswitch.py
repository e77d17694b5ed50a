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

Layout: the value types live in `pipelines.trading.killswitch_model`, the stateless evaluators in
`pipelines.trading.killswitch_checks`; this module holds the stateful `RiskGuard` and re-exports the
types, so `from pipelines.trading.killswitch import ...` is the one import path callers use.

Units: equity, PnL and exposure are `Decimal` in the account's quote currency; rates and ratios are
float fractions; `now` is aware UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from pipelines.trading.config import KillSwitchConfig, require_utc
from pipelines.trading.killswitch_checks import (
    Evaluation,
    check_daily_loss,
    check_exposure,
    check_manual,
    check_model_health,
    check_phase,
    check_pnl_gap,
    check_runtime_health,
)
from pipelines.trading.killswitch_model import (
    BLOCKING,
    Action,
    GuardState,
    RiskSnapshot,
    RiskVerdict,
    Switch,
    SymbolRisk,
    Trigger,
)

__all__ = [
    "Action",
    "GuardState",
    "RiskGuard",
    "RiskSnapshot",
    "RiskVerdict",
    "Switch",
    "SymbolRisk",
    "Trigger",
]


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
        """Evaluate every switch against `snap` at `now` (may start timed pauses or the halt latch).

        Triggers are reported in a fixed order: account PnL, streaks, runtime health, timed pauses,
        model health, exposure, PnL gap, manual stop, deployment phase."""
        now = require_utc(now)
        cfg = self.cfg
        ev = Evaluation()
        check_daily_loss(snap, cfg, ev)
        self._drawdown_latch(snap, ev)
        self._loss_streak_reduce(ev)
        self._start_error_pauses(snap, now)
        check_runtime_health(snap, cfg, ev)
        self._active_pauses(now, ev)
        check_model_health(snap, cfg, ev)
        check_exposure(snap, cfg, ev)
        check_pnl_gap(snap, cfg, ev)
        check_manual(snap, ev)
        phase = cfg.deployment.current()
        check_phase(snap, phase, ev)
        if phase is None:
            return self._verdict(ev, None, None)
        return self._verdict(ev, phase.max_trade_notional, phase.bankroll)

    def _drawdown_latch(self, snap: RiskSnapshot, ev: Evaluation) -> None:
        """Drawdown from peak >= the limit latches the halt (until `reset_halt`); while halted: flatten."""
        if snap.peak_equity > 0:
            drawdown = float((snap.peak_equity - snap.equity) / snap.peak_equity)
            if drawdown >= self.cfg.max_drawdown and not self.state.halted:
                self.state.halted = True
                self.state.halt_reason = f"drawdown {drawdown:.2%} >= {self.cfg.max_drawdown:.0%}: flatten and halt"
        if self.state.halted:
            ev.fire(Switch.MAX_DRAWDOWN, self.state.halt_reason or "halted")
            ev.actions.update({Action.FLATTEN, Action.HALT})

    def _loss_streak_reduce(self, ev: Evaluation) -> None:
        cfg = self.cfg
        if self.state.consecutive_losses >= cfg.consecutive_losses_reduce:
            ev.multiplier *= cfg.consecutive_losses_size_factor
            ev.fire(
                Switch.CONSECUTIVE_LOSSES_REDUCE,
                f"{self.state.consecutive_losses} consecutive losses >= {cfg.consecutive_losses_reduce}: "
                f"sizes x{cfg.consecutive_losses_size_factor}",
            )

    def _start_error_pauses(self, snap: RiskSnapshot, now: datetime) -> None:
        """API error rate (with enough requests) and store errors start timed pauses (reported below)."""
        cfg = self.cfg
        if snap.api_requests >= cfg.api_error_min_requests and snap.api_requests > 0:
            rate = snap.api_errors / snap.api_requests
            if rate >= cfg.api_error_rate_limit:
                self._pause(Switch.API_ERROR_RATE, now, cfg.api_error_pause_seconds)
        if snap.store_errors > cfg.store_error_limit:
            self._pause(Switch.STORE_ERRORS, now, cfg.store_error_pause_seconds)

    def _active_pauses(self, now: datetime, ev: Evaluation) -> None:
        """Fire every timed pause still running at `now` and forget the expired ones."""
        for switch, until in sorted(self.state.pauses.items()):
            if now < until:
                ev.fire(switch, self._pause_reason(switch, until))
        self.state.pauses = {s: u for s, u in self.state.pauses.items() if now < u}

    def _verdict(self, ev: Evaluation, max_trade: Decimal | None, bankroll: Decimal | None) -> RiskVerdict:
        """Fold the evaluation into a verdict; switches not active last time are `newly_fired` (alert)."""
        active = frozenset(t.switch for t in ev.triggers)
        newly = active - self.state.last_active
        self.state.last_active = active
        if newly:
            ev.actions.add(Action.ALERT)
        allow = not any(t.switch in BLOCKING for t in ev.triggers)
        pause_ends = list(self.state.pauses.values())
        return RiskVerdict(
            allow_entries=allow,
            blocked_symbols=frozenset(ev.blocked),
            size_multiplier=ev.multiplier if allow else 0.0,
            max_trade_notional=max_trade,
            bankroll_cap=bankroll,
            actions=frozenset(ev.actions),
            triggers=tuple(ev.triggers),
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
