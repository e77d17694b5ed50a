"""Exit rules for an open directional position (SPEC 9), first that applies wins.

1. hard stop: gain <= -0.8% (majors) / -1.2% (alts); always honoured.
2. max hold (tier-3 new listings, SPEC 3: 120 s) when the position carries one.
3. expected-value trail: remaining expected return < -0.5 x gain achieved so far. Only while the gain is
   more than `churn_guard_ticks` ticks beyond entry: with a gain of zero the trail degenerates into
   "exit on any negative forecast", which is exactly the break-even churn one tick after entry that
   SPEC 9 forbids (two fees paid for nothing).
4. time stop: held >= 5 min and gain < +0.05%.
5. take profit: gain >= +0.7%.

Contracts: `gain` is the gross price return of the position as a fraction, side-aware
(long: mark/entry - 1; short: 1 - mark/entry), fees excluded, because SPEC 9 states the thresholds as
price moves. `mark` should be the price the position could exit at now (bid for a long, ask for a
short). Prices are Decimal; `expected_remaining_return` is a float fraction from the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pipelines.trading.config import ExitConfig, require_utc
from pipelines.trading.instruments import Side


class ExitRule(StrEnum):
    HARD_STOP = "hard_stop"
    MAX_HOLD = "max_hold"
    EV_TRAIL = "ev_trail"
    TIME_STOP = "time_stop"
    TAKE_PROFIT = "take_profit"


@dataclass(frozen=True)
class PositionView:
    """An open position as the exit rules see it.

    `side` is the entry side (BUY = long). `tick_size` is the tick at the entry price (for the churn
    guard). `max_hold_seconds` is set for tier-3 new listings.
    """

    symbol: str
    side: Side
    entry_price: Decimal
    opened_at: datetime
    is_major: bool
    tick_size: Decimal
    max_hold_seconds: float | None = None


@dataclass(frozen=True)
class ExitDecision:
    """`exit` with the `rule` that fired, or hold; `reason` is for the log."""

    exit: bool
    rule: ExitRule | None
    gain: float
    held_seconds: float
    reason: str


def position_gain(side: Side, entry_price: Decimal, mark: Decimal) -> float:
    """Side-aware gross return of the position as a fraction (see module contract)."""
    if entry_price <= 0 or mark <= 0:
        raise ValueError("prices must be positive")
    move = (mark - entry_price) / entry_price
    return float(move if side is Side.BUY else -move)


def evaluate_exit(
    position: PositionView,
    mark: Decimal,
    now: datetime,
    cfg: ExitConfig,
    expected_remaining_return: float | None = None,
) -> ExitDecision:
    """Apply the exit rules in SPEC order and return the first that fires, or a hold."""
    now = require_utc(now)
    held = (now - require_utc(position.opened_at, "opened_at")).total_seconds()
    gain = position_gain(position.side, position.entry_price, mark)

    def out(rule: ExitRule, why: str) -> ExitDecision:
        return ExitDecision(True, rule, gain, held, f"{position.symbol} {rule.value}: {why}")

    stop = cfg.hard_stop_major if position.is_major else cfg.hard_stop_alt
    if gain <= -stop:
        return out(ExitRule.HARD_STOP, f"gain {gain:.4%} <= -{stop:.2%}")
    if position.max_hold_seconds is not None and held >= position.max_hold_seconds:
        return out(ExitRule.MAX_HOLD, f"held {held:.0f}s >= max hold {position.max_hold_seconds:.0f}s")

    churn_band = float(cfg.churn_guard_ticks * position.tick_size / position.entry_price)
    if expected_remaining_return is not None and gain > churn_band:
        remaining = expected_remaining_return
        # A NaN forecast is no forecast: never let it trigger (or block) an exit.
        if math.isfinite(remaining) and remaining < -cfg.ev_trail_ratio * gain:
            return out(
                ExitRule.EV_TRAIL,
                f"remaining expected {remaining:.4%} < -{cfg.ev_trail_ratio} x gain {gain:.4%}",
            )
    if held >= cfg.time_stop_seconds and gain < cfg.time_stop_min_gain:
        return out(
            ExitRule.TIME_STOP,
            f"held {held:.0f}s >= {cfg.time_stop_seconds:.0f}s with gain {gain:.4%} "
            f"< {cfg.time_stop_min_gain:.2%}",
        )
    if gain >= cfg.take_profit:
        return out(ExitRule.TAKE_PROFIT, f"gain {gain:.4%} >= {cfg.take_profit:.2%}")
    return ExitDecision(False, None, gain, held, f"{position.symbol} hold: gain {gain:.4%}, held {held:.0f}s")
