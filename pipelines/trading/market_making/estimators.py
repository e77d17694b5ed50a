"""Online estimators of the Avellaneda-Stoikov inputs: sigma, and (A, k) of lambda(delta) = A exp(-k delta).

sigma (price units per sqrt(second)): realized variance of mid changes per unit time over a rolling
window, sum(dm^2) / elapsed, blended with a prior worth `sigma_prior_seconds` of data:

    sigma^2 = (sum(dm^2) + prior^2 * W) / (elapsed + W)

so it never stalls: with no mid change (no trade, no book move) it drifts towards the prior instead
of freezing or collapsing, and with a full window the data dominates. Elapsed time includes the
silence since the last change (a quiet market IS low variance). Without a prior and before
`sigma_min_changes` changes it falls back to the floor (`sigma_floor_fraction` x mid), which with the
configured minimum spread still quotes.

lambda(delta) is an INTENSITY: the number of market orders per second that reach depth delta from the
mid (delta = trade price - mid for a buy, mid - trade price for a sell), not their summed volume
(another well-known pitfall). Trades printed by one taker order (same time, same side) count as ONE
order reaching the deepest of their prices. Both sides are pooled, so the per-side rate divides the
count by 2 x elapsed. On a grid of depths from the shallowest observed to the deepest that at least
`intensity_min_level_orders` orders reach, log lambda(delta_j) is regressed on delta_j by least
squares weighted by the counts (Var log count ~ 1/count): slope = -k, intercept = ln A. Depths are in
price units, so k is per price unit; a fit in ticks gives k per tick (`k_per_price` converts).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from pipelines.trading.market_making.config import EstimatorConfig


@dataclass(frozen=True)
class IntensityFit:
    """A fitted lambda(delta) = A exp(-k delta): A per second per side, k per price unit."""

    A: float
    k: float
    orders: int
    levels: int
    r2: float
    source: str = "fit"  # fit | prior


def k_per_price(k_per_tick: float, tick: float) -> float:
    """k fitted on depths counted in ticks -> k per price unit (delta_price = delta_ticks x tick)."""
    if tick <= 0:
        raise ValueError(f"tick must be positive, got {tick}")
    return k_per_tick / tick


def order_depths(times: np.ndarray, sides: np.ndarray, prices: np.ndarray, mids: np.ndarray) -> np.ndarray:
    """Depth reached by each market order: trades with the same time and side (one taker order's
    prints, in order) merge into one order at the deepest of their depths. `sides`: +1 buy, -1 sell."""
    depth = np.maximum(sides * (prices - mids), 0.0)
    if depth.size == 0:
        return depth
    new_order = np.ones(depth.size, dtype=bool)
    new_order[1:] = (times[1:] != times[:-1]) | (sides[1:] != sides[:-1])
    starts = np.flatnonzero(new_order)
    return np.maximum.reduceat(depth, starts)


def fit_intensity(
    depths: np.ndarray,
    elapsed_seconds: float,
    *,
    levels: int = 12,
    min_level_orders: int = 5,
    sides: int = 2,
) -> IntensityFit | None:
    """Fit A and k from market-order depths observed over `elapsed_seconds`; None when too few."""
    depths = np.asarray(depths, dtype=float)
    depths = depths[np.isfinite(depths)]
    if elapsed_seconds <= 0 or depths.size < max(min_level_orders, 3):
        return None
    ordered = np.sort(depths)
    deepest = ordered[-min_level_orders]
    shallowest = ordered[0]
    if deepest <= shallowest:
        return None
    grid = np.linspace(shallowest, deepest, levels)
    reached = depths.size - np.searchsorted(ordered, grid, side="left")
    keep = reached >= min_level_orders
    if keep.sum() < 3:
        return None
    x = grid[keep]
    y = np.log(reached[keep] / (sides * elapsed_seconds))
    # Var(log count) ~ 1/count: weight each level's residual by sqrt(count) (weighted least squares).
    weights = np.sqrt(reached[keep].astype(float))
    slope, intercept = np.polyfit(x, y, 1, w=weights)
    residual = y - (slope * x + intercept)
    mean = float(np.average(y, weights=weights**2))
    total = float((weights**2 * (y - mean) ** 2).sum())
    r2 = 1.0 - float((weights**2 * residual**2).sum()) / total if total > 0 else 0.0
    # A degenerate fit (depths on a few ticks only: an extreme slope and exp(intercept) beyond a float)
    # is no fit: the strategy keeps its prior instead of failing on every book.
    if not (math.isfinite(slope) and slope < 0 and math.isfinite(intercept) and intercept < 700.0):
        return None
    a, k = float(math.exp(intercept)), float(-slope)
    return IntensityFit(A=a, k=k, orders=int(depths.size), levels=int(keep.sum()), r2=r2)


class VolatilityEstimator:
    """Rolling sigma from mid changes; times are seconds (e.g. `datetime.timestamp()`)."""

    def __init__(self, cfg: EstimatorConfig, prior_sigma: float | None = None) -> None:
        self.cfg = cfg
        prior = prior_sigma if prior_sigma is not None else cfg.sigma_prior
        self.prior = prior if prior and prior > 0 and math.isfinite(prior) else None
        self._changes: deque[tuple[float, float]] = deque()
        self._sum_sq = 0.0
        self._last: tuple[float, float] | None = None
        self._started: float | None = None

    def set_prior(self, sigma: float) -> None:
        if sigma > 0 and math.isfinite(sigma):
            self.prior = sigma

    def observe(self, t: float, mid: float) -> None:
        if not (math.isfinite(mid) and mid > 0):
            return
        if self._last is None:
            self._started = t
        elif t >= self._last[0]:
            change = (mid - self._last[1]) ** 2
            if change > 0:  # an unchanged mid adds nothing to the sum; elapsed time still counts
                self._changes.append((t, change))
                self._sum_sq += change
        else:
            return  # out of order: ignore rather than rewrite history
        self._last = (t, mid)

    def _trim(self, now: float) -> None:
        cutoff = now - self.cfg.sigma_window_seconds
        while self._changes and self._changes[0][0] < cutoff:
            self._sum_sq -= self._changes.popleft()[1]
        self._sum_sq = max(self._sum_sq, 0.0)

    def sigma(self, now: float) -> float:
        """sigma now; 0.0 only before any mid was seen."""
        if self._last is None or self._started is None:
            return self.prior or 0.0
        self._trim(now)
        floor = self.cfg.sigma_floor_fraction * self._last[1]
        elapsed = min(max(now - self._started, 0.0), self.cfg.sigma_window_seconds)
        enough = len(self._changes) >= self.cfg.sigma_min_changes and elapsed > 0
        data_sq, data_t = (self._sum_sq, elapsed) if enough else (0.0, 0.0)
        if self.prior is None:
            return max(math.sqrt(data_sq / data_t), floor) if enough else floor
        weight = self.cfg.sigma_prior_seconds
        variance = (data_sq + self.prior**2 * weight) / (data_t + weight)
        return max(math.sqrt(variance), floor)


class IntensityEstimator:
    """Rolling (A, k) from market orders, refitted at most every `refit_seconds`; the last good fit
    (or the prior) stands in between and when a window has too few orders."""

    def __init__(self, cfg: EstimatorConfig, prior: IntensityFit | None = None) -> None:
        self.cfg = cfg
        self._prior = prior or IntensityFit(cfg.prior_a, cfg.prior_k, 0, 0, 0.0, source="prior")
        self._fit = self._prior
        self._orders: deque[tuple[float, int, float]] = deque()  # (t, side, depth)
        self._started: float | None = None
        self._fitted_at: float | None = None

    def set_prior(self, prior: IntensityFit) -> None:
        self._prior = prior
        if self._fit.source == "prior":
            self._fit = prior

    def observe(self, t: float, side: int, price: float, mid: float) -> None:
        """One trade print (`side` +1 for a buy aggressor, -1 for a sell) against the mid before it."""
        if side not in (1, -1) or not (math.isfinite(price) and math.isfinite(mid) and mid > 0):
            return
        if self._started is None:
            self._started = t
        depth = max(side * (price - mid), 0.0)
        if self._orders and self._orders[-1][0] == t and self._orders[-1][1] == side:
            last = self._orders.pop()
            depth = max(depth, last[2])
        self._orders.append((t, side, depth))

    @property
    def current_fit(self) -> IntensityFit:
        """The fit in force, without refitting."""
        return self._fit

    def current(self, now: float) -> IntensityFit:
        due = self._fitted_at is None or now - self._fitted_at >= self.cfg.refit_seconds
        if due:
            self._fitted_at = now
            self._refit(now)
        return self._fit

    def _refit(self, now: float) -> None:
        cutoff = now - self.cfg.intensity_window_seconds
        while self._orders and self._orders[0][0] < cutoff:
            self._orders.popleft()
        if self._started is None or len(self._orders) < self.cfg.intensity_min_orders:
            return
        elapsed = min(now - self._started, self.cfg.intensity_window_seconds)
        fit = fit_intensity(
            np.fromiter((o[2] for o in self._orders), dtype=float, count=len(self._orders)),
            elapsed,
            levels=self.cfg.intensity_levels,
            min_level_orders=self.cfg.intensity_min_level_orders,
        )
        if fit is not None:
            self._fit = fit
