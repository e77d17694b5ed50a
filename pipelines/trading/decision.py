"""Expected-value entry gate (SPEC 9).

E = p x avg_win - (1 - p) x avg_loss - fees - expected_slippage - spread / 2

Enter only when E is strictly above a threshold that rises with volatility and spread and moves with a
Bayesian (Beta) estimate of the recent win rate:

    threshold = max(0, base + k_vol x volatility + k_spread x spread + shift x (avg_win + avg_loss))
    shift     = clamp(prior_mean - posterior_mean, -band, +band)

Why the shift is scaled by (avg_win + avg_loss): that is dE/dp, so the band of +-2% is a band on the
win probability. Winning less often than the prior expects raises the bar as if the model's p were up to
2 points too optimistic; winning more lowers it by at most as much. The threshold never goes below 0, so
a trade with non-positive expected value is never entered, whatever the recent streak.

Units: every input and output is a fraction of notional (0.001 is 0.1%) or a probability, as `float`.
This module never sees venue prices or sizes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from pipelines.trading.config import DecisionConfig


@dataclass(frozen=True)
class EntryInputs:
    """What the entry gate needs for one candidate trade in one direction.

    p_win: calibrated probability this trade wins, in [0, 1].
    avg_win / avg_loss: mean gross return of winners / mean loss magnitude of losers (both >= 0).
    fees: round-trip fee fraction (entry + exit). expected_slippage: round-trip, fraction.
    spread: (ask - bid) / mid. volatility: return standard deviation over the holding horizon.
    """

    p_win: float
    avg_win: float
    avg_loss: float
    fees: float
    expected_slippage: float
    spread: float
    volatility: float

    def problems(self) -> list[str]:
        """Input errors that must block an entry (NaN from a model, negative costs, p outside [0, 1])."""
        issues = [f"{name} is not finite" for name, value in vars(self).items() if not math.isfinite(value)]
        if issues:
            return issues
        if not 0.0 <= self.p_win <= 1.0:
            issues.append(f"p_win {self.p_win} outside [0, 1]")
        for name in ("avg_win", "avg_loss", "fees", "expected_slippage", "spread", "volatility"):
            if getattr(self, name) < 0.0:
                issues.append(f"{name} is negative")
        return issues


def expected_value(inputs: EntryInputs) -> float:
    """E after costs, as a fraction of notional (SPEC 9 formula, half spread because we cross half)."""
    p = inputs.p_win
    return (
        p * inputs.avg_win
        - (1.0 - p) * inputs.avg_loss
        - inputs.fees
        - inputs.expected_slippage
        - inputs.spread / 2.0
    )


class WinRateTracker:
    """Beta-Binomial estimate of the recent win rate over the last `cfg.win_rate_window` closed trades.

    Pure state: feed it outcomes with `record`; persist `outcomes()` and rebuild with `initial`.
    """

    def __init__(self, cfg: DecisionConfig, initial: Iterable[bool] = ()) -> None:
        self._cfg = cfg
        self._outcomes: deque[bool] = deque(initial, maxlen=cfg.win_rate_window)

    def record(self, won: bool) -> None:
        """Add one closed trade (won means net PnL > 0)."""
        self._outcomes.append(won)

    def outcomes(self) -> tuple[bool, ...]:
        return tuple(self._outcomes)

    @property
    def trades(self) -> int:
        return len(self._outcomes)

    @property
    def wins(self) -> int:
        return sum(self._outcomes)

    @property
    def prior_mean(self) -> float:
        return self._cfg.prior_alpha / (self._cfg.prior_alpha + self._cfg.prior_beta)

    @property
    def posterior_mean(self) -> float:
        alpha = self._cfg.prior_alpha + self.wins
        beta = self._cfg.prior_beta + (self.trades - self.wins)
        return alpha / (alpha + beta)

    def shift(self) -> float:
        """Win-probability shift in [-band, +band]; positive (raise the bar) when winning below the prior."""
        band = self._cfg.win_rate_band
        return min(band, max(-band, self.prior_mean - self.posterior_mean))


@dataclass(frozen=True)
class ThresholdBreakdown:
    """The threshold and each of its terms, for the decision log."""

    base: float
    volatility_term: float
    spread_term: float
    win_rate_shift: float
    win_rate_term: float
    total: float


def entry_threshold(
    inputs: EntryInputs, cfg: DecisionConfig, tracker: WinRateTracker | None = None
) -> ThresholdBreakdown:
    """The E a trade must beat; never below 0."""
    shift = tracker.shift() if tracker is not None else 0.0
    vol_term = cfg.volatility_coefficient * inputs.volatility
    spread_term = cfg.spread_coefficient * inputs.spread
    win_term = shift * (inputs.avg_win + inputs.avg_loss)
    total = max(0.0, cfg.base_threshold + vol_term + spread_term + win_term)
    return ThresholdBreakdown(cfg.base_threshold, vol_term, spread_term, shift, win_term, total)


@dataclass(frozen=True)
class EntryDecision:
    """Whether to enter, and why, in words a person reading the log can check."""

    enter: bool
    expected_value: float
    threshold: float
    breakdown: ThresholdBreakdown | None
    reason: str


def decide_entry(
    inputs: EntryInputs, cfg: DecisionConfig, tracker: WinRateTracker | None = None
) -> EntryDecision:
    """Enter iff the inputs are valid and E > threshold (strictly)."""
    issues = inputs.problems()
    if issues:
        return EntryDecision(False, math.nan, math.nan, None, "invalid input: " + "; ".join(issues))
    ev = expected_value(inputs)
    breakdown = entry_threshold(inputs, cfg, tracker)
    detail = (
        f"E={ev:.6f} vs threshold={breakdown.total:.6f} "
        f"(base {breakdown.base:.6f}, vol {breakdown.volatility_term:.6f}, "
        f"spread {breakdown.spread_term:.6f}, win-rate shift {breakdown.win_rate_shift:+.4f} "
        f"-> {breakdown.win_rate_term:+.6f})"
    )
    if ev > breakdown.total:
        return EntryDecision(True, ev, breakdown.total, breakdown, "enter: " + detail)
    return EntryDecision(False, ev, breakdown.total, breakdown, "skip: " + detail)
