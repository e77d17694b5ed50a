"""The value types of the kill switches (`pipelines.trading.killswitch`): switch and action names, the
snapshot a risk evaluation reads, the verdict it returns, and the guard's persistent state.

Units: equity, PnL and exposure are `Decimal` in the account's quote currency; rates and ratios are
float fractions; datetimes are aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


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


BLOCKING = frozenset(
    {
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
)
"""Switches that block every new entry while active (the others gate symbols, sizes or ask for actions)."""
