"""Classification metrics for probability forecasts (pure numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassificationMetrics:
    auc: float
    brier: float
    log_loss: float
    accuracy: float
    ece: float
    n: int


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed frequency - mean forecast| over equal-width probability bins, weighted by count."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(y))


def classification_metrics(y: np.ndarray, p: np.ndarray) -> ClassificationMetrics:
    """Metrics of probabilities `p` of the positive class against 0/1 outcomes `y`."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    if len(y) == 0 or len(y) != len(p):
        raise ValueError("y and p must be non-empty and of the same length")
    from sklearn.metrics import roc_auc_score  # sklearn + scipy are ~60 MB: not in the serving process

    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else 0.5
    return ClassificationMetrics(
        auc=auc,
        brier=float(np.mean((p - y) ** 2)),
        log_loss=float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        accuracy=float(np.mean((p >= 0.5) == (y == 1))),
        ece=expected_calibration_error(y, p),
        n=len(y),
    )


def strategy_sharpe(
    p: np.ndarray, forward_returns: np.ndarray, *, threshold: float, fee: float, bars_per_year: float
) -> float:
    """Annualized Sharpe of a bar-level long/short/flat strategy on the forecasts, net of fees.

    Position is +1 when p >= 0.5 + threshold, -1 when p <= 0.5 - threshold, else 0; each change of
    position pays `fee` (fraction of notional) per unit changed. Rows must be time-ordered per symbol;
    the fee is an approximation across symbol boundaries, which is conservative.
    """
    position = np.where(p >= 0.5 + threshold, 1.0, np.where(p <= 0.5 - threshold, -1.0, 0.0))
    turnover = np.abs(np.diff(position, prepend=0.0))
    pnl = position * forward_returns - fee * turnover
    std = pnl.std()
    if std == 0 or not np.isfinite(std):
        return 0.0
    return float(pnl.mean() / std * np.sqrt(bars_per_year))
