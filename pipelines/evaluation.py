"""Out-of-sample evaluation of a probability forecast (SPEC 8), pure numpy/polars.

Per fold and overall: AUC, Brier, log loss, ECE, accuracy; accuracy of the most confident 10/20/50% of
rows (confidence = |p - 0.5|); the same figures by session (Asia/Europe/US from the bar's UTC open hour,
with the feature code's session table, so features and evaluation agree) and by volatility regime
(the `vol_regime` feature, ATR 20 / ATR 60: calm < 0.9 <= normal <= 1.1 < expanding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.features.spec import DEFAULT_PARAMS, SESSION_ASIA, SESSION_EUROPE, SESSION_US
from pipelines.metrics import ClassificationMetrics, classification_metrics

CONFIDENCE_BUCKETS = (0.10, 0.20, 0.50)
SESSION_NAMES = {SESSION_ASIA: "asia", SESSION_EUROPE: "europe", SESSION_US: "us"}
CALM_BELOW = 0.9
EXPANDING_ABOVE = 1.1
MIN_GROUP_ROWS = 30  # smaller groups give no figure: their metrics would be noise


@dataclass(frozen=True)
class ForecastReport:
    overall: ClassificationMetrics
    top_accuracy: dict[str, float]  # "top_10" -> accuracy of the 10% most confident rows
    by_session: dict[str, ClassificationMetrics]
    by_vol_regime: dict[str, ClassificationMetrics]

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat metric names for MLflow: `<prefix>auc`, `<prefix>session_asia_accuracy`, ..."""
        out = {
            f"{prefix}auc": self.overall.auc,
            f"{prefix}brier": self.overall.brier,
            f"{prefix}log_loss": self.overall.log_loss,
            f"{prefix}ece": self.overall.ece,
            f"{prefix}accuracy": self.overall.accuracy,
            f"{prefix}rows": float(self.overall.n),
        }
        out |= {f"{prefix}accuracy_{name}": value for name, value in self.top_accuracy.items()}
        for group, table in (("session", self.by_session), ("vol", self.by_vol_regime)):
            for name, m in table.items():
                out[f"{prefix}{group}_{name}_accuracy"] = m.accuracy
                out[f"{prefix}{group}_{name}_auc"] = m.auc
                out[f"{prefix}{group}_{name}_brier"] = m.brier
        return out


def top_confidence_accuracy(y: np.ndarray, p: np.ndarray, share: float) -> float:
    """Accuracy (p >= 0.5 means up) over the `share` of rows with the largest |p - 0.5|."""
    if not 0 < share <= 1:
        raise ValueError("share must be in (0, 1]")
    k = max(1, round(len(p) * share))
    order = np.argsort(-np.abs(p - 0.5), kind="stable")[:k]
    return float(np.mean((p[order] >= 0.5) == (y[order] == 1)))


def session_names(ts: pl.Series) -> np.ndarray:
    """Session of each bar from its UTC open hour (Asia, Europe, US), as in the `time_regime` feature."""
    hours = ts.dt.convert_time_zone("UTC").dt.hour().to_numpy()
    codes = np.array([DEFAULT_PARAMS.session_code(int(hour)) for hour in range(24)])
    return np.array([SESSION_NAMES[code] for code in codes])[hours]


def vol_regime_names(vol_regime: np.ndarray) -> np.ndarray:
    v = np.asarray(vol_regime, dtype=float)
    named = np.where(v < CALM_BELOW, "calm", np.where(v > EXPANDING_ABOVE, "expanding", "normal"))
    return np.where(np.isfinite(v), named, "unknown")


def _grouped(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> dict[str, ClassificationMetrics]:
    out = {}
    for name in sorted(set(groups.tolist())):
        mask = groups == name
        if mask.sum() >= MIN_GROUP_ROWS:
            out[str(name)] = classification_metrics(y[mask], p[mask])
    return out


def evaluate_forecast(y: np.ndarray, p: np.ndarray, ts: pl.Series, vol_regime: np.ndarray) -> ForecastReport:
    """The forecast report of `p` against outcomes `y` (0/1) for bars opening at `ts` (UTC)."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if not (len(y) == len(p) == len(ts) == len(vol_regime)):
        raise ValueError("y, p, ts and vol_regime must have the same length")
    return ForecastReport(
        overall=classification_metrics(y, p),
        top_accuracy={f"top_{round(s * 100)}": top_confidence_accuracy(y, p, s) for s in CONFIDENCE_BUCKETS},
        by_session=_grouped(y, p, session_names(ts)),
        by_vol_regime=_grouped(y, p, vol_regime_names(vol_regime)),
    )
