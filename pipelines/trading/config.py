"""Every number of SPEC sections 9-11 as validated, frozen configuration.

Contracts:
- Fractions are fractions: 0.007 is 0.7%. Nothing in this module is a percentage number.
- Durations are seconds (`float`), named `*_seconds`; latencies in milliseconds are named `*_ms`.
- Money amounts that bound what reaches a venue (deployment phase caps) are `Decimal` in the quote
  currency of the account.
- Models are frozen and reject unknown keys, so a typo in configuration fails at load instead of silently
  falling back to a default (a misspelt `daily_loss_limit` must not leave the default in force unnoticed).

The defaults are SPEC.md's seed values. Build a `TradingConfig` from a mapping with
`TradingConfig.model_validate(...)`; the settings layer (pydantic-settings, prefix `ALPHATIDE_`) owns
where the mapping comes from.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


def system_clock() -> datetime:
    """The wall clock, aware UTC: the one place it is read; adapters inject it where a clock is needed."""
    return datetime.now(UTC)


def require_utc(ts: datetime, name: str = "now") -> datetime:
    """Return `ts` if it is timezone-aware with a zero UTC offset, else raise `ValueError`.

    Why: a naive datetime compared with an aware one raises at the worst moment (inside a risk check),
    and a local-time `now` shifts every TTL and pause by the UTC offset.
    """
    offset = ts.utcoffset()
    if offset is None:
        raise ValueError(f"{name} must be timezone-aware UTC, got naive {ts!r}")
    if offset != timedelta(0):
        raise ValueError(f"{name} must be UTC, got offset {offset}")
    return ts.astimezone(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DecisionConfig(_Frozen):
    """Entry gate (SPEC 9): enter when E clears a threshold.

    threshold = base_threshold + volatility_coefficient x volatility + spread_coefficient x spread
              + win-rate shift, where the shift is the Beta-posterior win-rate deficit (prior mean minus
              posterior mean), clamped to +-win_rate_band, times the payoff span (avg_win + avg_loss).
    All values are fractions of notional. The Beta(50, 50) prior weighs as 100 trades: strong enough
    that one loss moves the win-rate estimate by half a point, not the whole band, so the threshold does
    not flap trade by trade; a sustained run still saturates the +-2% band within a 50-trade window.
    """

    base_threshold: float = Field(default=0.0003, ge=0.0, le=0.05)
    volatility_coefficient: float = Field(default=0.10, ge=0.0, le=10.0)
    spread_coefficient: float = Field(default=0.50, ge=0.0, le=10.0)
    prior_alpha: float = Field(default=50.0, gt=0.0, description="Beta prior pseudo-wins")
    prior_beta: float = Field(default=50.0, gt=0.0, description="Beta prior pseudo-losses")
    win_rate_window: int = Field(default=50, ge=1, description="recent closed trades fed to the Beta update")
    win_rate_band: float = Field(default=0.02, ge=0.0, le=0.10, description="max win-rate shift, absolute")


class OpenPositionTier(_Frozen):
    """With at most `max_open` positions already open, new sizes are multiplied by `multiplier`."""

    max_open: int = Field(ge=0)
    multiplier: float = Field(gt=0.0, le=1.0)


def _default_tiers() -> tuple[OpenPositionTier, ...]:
    return (
        OpenPositionTier(max_open=0, multiplier=1.0),
        OpenPositionTier(max_open=3, multiplier=0.8),
        OpenPositionTier(max_open=5, multiplier=0.4),
    )


class SizingConfig(_Frozen):
    """Adaptive Kelly sizing (SPEC 9; the tier-3 factor is SPEC 3)."""

    kelly_cap: float = Field(default=0.35, gt=0.0, le=1.0)
    initial_kelly_fraction: float = Field(
        default=0.05, ge=0.0, le=1.0, description="fraction used before the first recalibration"
    )
    recalibrate_every: int = Field(default=50, ge=1, description="closed trades between recalibrations")
    lookback_trades: int = Field(default=200, ge=1, description="closed trades a recalibration looks at")
    smoothing_old_weight: float = Field(default=0.9, ge=0.0, le=1.0, description="new weight is 1 - this")
    vpin_threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    vpin_factor: float = Field(default=0.3, gt=0.0, le=1.0)
    kyle_lambda_percentile: float = Field(
        default=0.8, gt=0.0, lt=1.0, description="which percentile of Kyle's lambda the caller passes"
    )
    kyle_lambda_factor: float = Field(default=0.6, gt=0.0, le=1.0)
    max_trade_fraction_major: float = Field(default=0.12, gt=0.0, le=1.0)
    max_trade_fraction_alt: float = Field(default=0.08, gt=0.0, le=1.0)
    open_position_tiers: tuple[OpenPositionTier, ...] = Field(default_factory=_default_tiers)
    correlation_threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    correlation_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    new_listing_factor: float = Field(default=0.3, gt=0.0, le=1.0, description="tier-3 size multiplier")
    binary_kelly_multiplier: float = Field(default=0.25, gt=0.0, le=1.0, description="quarter-Kelly")
    binary_max_trade_fraction: float = Field(default=0.08, gt=0.0, le=1.0)
    small_account_min_confidence: float = Field(default=0.6, ge=0.0, le=1.0)
    small_account_margin: float = Field(default=0.10, ge=0.0, le=1.0, description="raise to min x (1 + this)")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.initial_kelly_fraction > self.kelly_cap:
            raise ValueError("initial_kelly_fraction must not exceed kelly_cap")
        if self.lookback_trades < self.recalibrate_every:
            raise ValueError("lookback_trades must be >= recalibrate_every")
        tiers = self.open_position_tiers
        if not tiers:
            raise ValueError("open_position_tiers must not be empty")
        for lower, upper in itertools.pairwise(tiers):
            if upper.max_open <= lower.max_open:
                raise ValueError("open_position_tiers must have strictly increasing max_open")
            if upper.multiplier > lower.multiplier:
                raise ValueError("open_position_tiers multipliers must not increase with open positions")
        return self


class ExitConfig(_Frozen):
    """Exit rules (SPEC 9), evaluated in this order: hard stop, EV trail, time stop, take profit.

    Stops and targets are positive magnitudes of the gross price return of the position.
    """

    hard_stop_major: float = Field(default=0.008, gt=0.0, lt=0.5)
    hard_stop_alt: float = Field(default=0.012, gt=0.0, lt=0.5)
    ev_trail_ratio: float = Field(default=0.5, gt=0.0, le=10.0)
    time_stop_seconds: float = Field(default=300.0, gt=0.0)
    time_stop_min_gain: float = Field(default=0.0005, ge=0.0, lt=0.5)
    take_profit: float = Field(default=0.007, gt=0.0, lt=1.0)
    churn_guard_ticks: int = Field(default=1, ge=0, description="the EV trail needs the gain to exceed this many ticks")


class PhaseCap(_Frozen):
    """Risk caps of one deployment phase, in the account's quote currency."""

    name: str = Field(min_length=1)
    bankroll: Decimal = Field(gt=0)
    max_trade_notional: Decimal = Field(gt=0)
    max_daily_loss: Decimal = Field(gt=0, description="positive amount; entries stop at this loss")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.max_trade_notional > self.bankroll:
            raise ValueError(f"phase {self.name}: max_trade_notional exceeds bankroll")
        if self.max_daily_loss > self.bankroll:
            raise ValueError(f"phase {self.name}: max_daily_loss exceeds bankroll")
        return self


def _default_phases() -> tuple[PhaseCap, ...]:
    return (
        PhaseCap(name="phase1", bankroll=Decimal(200), max_trade_notional=Decimal(20), max_daily_loss=Decimal(10)),
        PhaseCap(name="phase2", bankroll=Decimal(1000), max_trade_notional=Decimal(100), max_daily_loss=Decimal(50)),
        PhaseCap(
            name="phase3",
            bankroll=Decimal(5000),
            max_trade_notional=Decimal(500),
            max_daily_loss=Decimal(250),
        ),
    )


class DeploymentConfig(_Frozen):
    """Deployment phases (SPEC 10). `active_phase` is 1-based; `None` means graduated (no phase caps).

    The default is phase 1: a strategy nobody configured is a new strategy, and must start small.
    """

    phases: tuple[PhaseCap, ...] = Field(default_factory=_default_phases)
    active_phase: int | None = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.active_phase is not None and self.active_phase > len(self.phases):
            raise ValueError(f"active_phase {self.active_phase} but only {len(self.phases)} phases defined")
        return self

    def current(self) -> PhaseCap | None:
        """The caps in force, or None when graduated."""
        return None if self.active_phase is None else self.phases[self.active_phase - 1]


class KillSwitchConfig(_Frozen):
    """Kill-switch thresholds (SPEC 10 and the drift rule of SPEC 8)."""

    daily_loss_limit: float = Field(
        default=-0.05, description="daily PnL fraction at or below which entries stop; within [-0.08, 0)"
    )
    max_drawdown: float = Field(default=0.20, gt=0.0, lt=1.0)
    consecutive_losses_pause: int = Field(default=3, ge=1)
    consecutive_losses_pause_seconds: float = Field(default=3600.0, gt=0.0)
    consecutive_losses_reduce: int = Field(default=10, ge=1)
    consecutive_losses_size_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    losing_days_pause: int = Field(default=3, ge=1)
    losing_days_pause_seconds: float = Field(default=86400.0, gt=0.0)
    hurst_random_walk_low: float = Field(default=0.45, ge=0.0, le=1.0)
    hurst_random_walk_high: float = Field(default=0.58, ge=0.0, le=1.0)
    api_error_rate_limit: float = Field(default=0.05, gt=0.0, le=1.0)
    api_error_min_requests: int = Field(
        default=20, ge=1, description="below this many requests the rate is too noisy to act on"
    )
    api_error_pause_seconds: float = Field(default=1800.0, gt=0.0)
    calibration_error_limit: float = Field(default=0.15, gt=0.0, le=1.0)
    calibration_size_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    drift_p_value: float = Field(default=0.01, gt=0.0, lt=1.0)
    drift_size_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    max_symbol_exposure_share: float = Field(default=0.30, gt=0.0, le=1.0)
    concentration_min_book_share: float = Field(
        default=0.10,
        ge=0.0,
        le=1.0,
        description="concentration is a share of max(gross exposure, this share of equity): 0 = of gross alone",
    )
    max_leverage: float = Field(default=1.5, gt=0.0)
    spread_norm_multiple: float = Field(default=3.0, gt=1.0)
    volume_norm_multiple: float = Field(default=0.5, gt=0.0, lt=1.0)
    max_zombie_orders: int = Field(default=5, ge=0)
    inference_p99_limit_ms: float = Field(default=10.0, gt=0.0)
    # resident anonymous memory (heap, not the libraries' code pages): what shedding caches can free
    memory_limit_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    store_error_limit: int = Field(default=3, ge=0)
    store_error_pause_seconds: float = Field(default=900.0, gt=0.0)
    pnl_gap_limit: float = Field(default=0.10, gt=0.0)
    pnl_gap_floor_fraction: float = Field(
        default=0.001, ge=0.0, description="gap denominator floor as a fraction of equity (avoids 0/0 noise)"
    )
    pnl_gap_floor_quote: float = Field(
        default=10.0, ge=0.0, description="gap denominator floor in quote currency: tiny PnLs do not trip the gap"
    )
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not (-0.08 <= self.daily_loss_limit < 0.0):
            raise ValueError(f"daily_loss_limit must be within [-0.08, 0), got {self.daily_loss_limit}")
        if self.hurst_random_walk_low >= self.hurst_random_walk_high:
            raise ValueError("hurst_random_walk_low must be below hurst_random_walk_high")
        if self.consecutive_losses_reduce < self.consecutive_losses_pause:
            raise ValueError("consecutive_losses_reduce must be >= consecutive_losses_pause")
        return self


class OrderConfig(_Frozen):
    """Order lifecycle (SPEC 11)."""

    ttl_seconds: float = Field(default=60.0, gt=0.0)
    taker_fallback_enabled: bool = True
    taker_fallback_after_seconds: float = Field(default=10.0, ge=0.0)
    taker_fallback_max_filled_ratio: float = Field(
        default=0.8, gt=0.0, le=1.0, description="fallback only while filled/target is below this"
    )
    taker_max_ticks_beyond_touch: int = Field(default=1, ge=0)
    slippage_cap: float = Field(default=0.005, gt=0.0, lt=0.1, description="vs the working order's quote price")
    cancel_replace_delay_seconds: float = Field(default=0.5, ge=0.0)
    max_rejects: int = Field(default=3, ge=1, description="rejections before a working order gives up")
    ack_timeout_seconds: float = Field(default=5.0, gt=0.0, description="NEW without ack longer: zombie")
    cancel_confirm_timeout_seconds: float = Field(default=5.0, gt=0.0, description="unconfirmed cancel: zombie")
    zombie_grace_seconds: float = Field(default=30.0, ge=0.0, description="live past ttl + this: zombie")
    max_book_age_seconds: float = Field(
        default=3.0, gt=0.0, description="an older (or crossed) book is not trusted for placing orders"
    )
    client_id_prefix: str = Field(default="at", pattern=r"^[A-Za-z0-9]{1,4}$")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.taker_fallback_after_seconds >= self.ttl_seconds:
            raise ValueError("taker_fallback_after_seconds must be below ttl_seconds")
        return self


class PaperConfig(_Frozen):
    """Paper matching engine (SPEC 11)."""

    latency_ms: float = Field(default=50.0, ge=0.0, description="submit/cancel to effective on the paper venue")
    fill_at_limit_price: bool = Field(
        default=False,
        description="False (conservative): a resting order fills only on trades strictly through it",
    )
    taker_slippage: float = Field(default=0.0002, ge=0.0, lt=0.1, description="adverse price move on taker fills")


class TradingConfig(_Frozen):
    """All trading-core configuration in one validated tree."""

    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    sizing: SizingConfig = Field(default_factory=SizingConfig)
    exits: ExitConfig = Field(default_factory=ExitConfig)
    kill: KillSwitchConfig = Field(default_factory=KillSwitchConfig)
    orders: OrderConfig = Field(default_factory=OrderConfig)
    paper: PaperConfig = Field(default_factory=PaperConfig)
