"""Fusion of the towers (SPEC section 7): P = w1 x P_tabular + w2 x f(context) + w3 x regime_boost.

The three inputs are each a probability of an up move, so any convex combination is one too:

- ``P_tabular``: the calibrated CatBoost probability.
- ``f(context)``: `ContextReadout`, a logistic regression of the outcome on the sequence tower's 4 context
  values, fitted on validation rows: f(c) = sigmoid(intercept + coef . c).
- ``regime_boost``: `RegimeBoost`, the up-rate of the bar's regime cell (trend_regime sign x vol_regime
  bucket: calm < 0.8 <= normal < 1.25 <= stormy), shrunk towards 0.5 with a Beta prior of
  ``prior_strength`` pseudo-rows: 0.5 + the probability shift that regime has shown.

Weights ``(w1, w2, w3)`` are non-negative and sum to 1; `fit_fusion` picks them per group (``"majors"``,
``"alts"``) by minimizing the log loss of P on validation rows (convex over the simplex, so SLSQP from the
SPEC's seed weights finds the optimum). A group with fewer than ``min_rows`` complete rows, or a single
class, keeps the seed weights (majors 0.55/0.30/0.15, alts 0.65/0.10/0.25).

A missing input (NaN: no full sequence window yet, regime in warm-up) is left out and the remaining weights
are renormalized, so P degrades to the tabular tower rather than to a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

GROUPS = ("majors", "alts")
_EPS = 1e-6


def _simplex(weights: tuple[float, float, float], name: str) -> tuple[float, float, float]:
    if len(weights) != 3 or any(not np.isfinite(w) or w < 0 for w in weights):
        raise ValueError(f"{name} must be three non-negative finite weights, got {weights}")
    if abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, got {sum(weights)}")
    return weights


class FusionConfig(BaseModel):
    """Numbers of the fusion step; frozen, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    majors_seed: tuple[float, float, float] = (0.55, 0.30, 0.15)
    alts_seed: tuple[float, float, float] = (0.65, 0.10, 0.25)
    min_rows: int = Field(500, ge=10, description="Fewer complete validation rows in a group: seed weights.")
    vol_regime_edges: tuple[float, float] = (0.8, 1.25)
    prior_strength: float = Field(200.0, ge=0, description="Beta prior pseudo-rows pulling regime cells to 0.5.")
    readout_l2: float = Field(1.0, gt=0, description="Inverse L2 strength (sklearn C) of the context readout.")

    @field_validator("majors_seed", "alts_seed")
    @classmethod
    def _on_simplex(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        return _simplex(value, "seed weights")

    def seed(self, group: str) -> tuple[float, float, float]:
        return self.majors_seed if group == "majors" else self.alts_seed


@dataclass(frozen=True)
class FusionWeights:
    """(w_tabular, w_context, w_regime) on the simplex, how they were obtained and on how many rows."""

    w_tabular: float
    w_context: float
    w_regime: float
    source: Literal["fitted", "seed"]
    n_rows: int = 0
    log_loss: float | None = None  # validation log loss of the fused P with these weights (fitted only)

    def __post_init__(self) -> None:
        _simplex(self.as_tuple(), "fusion weights")
        if self.source not in ("fitted", "seed"):
            raise ValueError(f"FusionWeights.source must be 'fitted' or 'seed', got {self.source!r}")

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.w_tabular, self.w_context, self.w_regime)

    def to_dict(self) -> dict[str, Any]:
        return {
            "w_tabular": self.w_tabular,
            "w_context": self.w_context,
            "w_regime": self.w_regime,
            "source": self.source,
            "n_rows": self.n_rows,
            "log_loss": self.log_loss,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FusionWeights:
        try:
            return cls(
                w_tabular=float(data["w_tabular"]),
                w_context=float(data["w_context"]),
                w_regime=float(data["w_regime"]),
                source=data["source"],
                n_rows=int(data.get("n_rows", 0)),
                log_loss=None if data.get("log_loss") is None else float(data["log_loss"]),
            )
        except KeyError as missing:
            raise ValueError(f"fusion weights description lacks {missing}") from None


def _as_1d(name: str, values: np.ndarray, n: int | None = None) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).ravel()
    if n is not None and len(out) != n:
        raise ValueError(f"{name} has {len(out)} rows, expected {n}")
    return out


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    q = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def _fit_group(inputs: np.ndarray, y: np.ndarray, seed: tuple[float, float, float]) -> tuple[np.ndarray, float]:
    """Log-loss-optimal simplex weights for the (n, 3) probability matrix ``inputs``."""

    def loss_and_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        p = np.clip(inputs @ w, _EPS, 1 - _EPS)
        loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        dp = -(y / p - (1 - y) / (1 - p)) / len(y)
        return float(loss), inputs.T @ dp

    from scipy.optimize import minimize  # fitting only: the serving process applies fusion without scipy

    result = minimize(
        loss_and_grad,
        x0=np.asarray(seed, dtype=np.float64),
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * 3,
        constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones(3)}],
        # log losses of weak 5m forecasts differ in the 4th-5th decimal: the default ftol (1e-6) would stop
        # at the seed
        options={"ftol": 1e-12, "maxiter": 500},
    )
    w = np.clip(result.x, 0.0, None)
    w = w / w.sum()
    seed_loss = loss_and_grad(np.asarray(seed))[0]
    fitted_loss = loss_and_grad(w)[0]
    if not np.isfinite(fitted_loss) or fitted_loss > seed_loss:  # never worse than where it started
        return np.asarray(seed, dtype=np.float64), seed_loss
    return w, fitted_loss


def fit_fusion(
    p_tab: np.ndarray,
    context_score: np.ndarray,
    regime_boost: np.ndarray,
    y: np.ndarray,
    is_major: np.ndarray,
    *,
    config: FusionConfig | None = None,
) -> dict[str, FusionWeights]:
    """Fusion weights per group, ``{"majors": ..., "alts": ...}``, fitted on validation rows.

    All arrays have one entry per validation row: probabilities in [0, 1] (``context_score`` = f(context)
    from `ContextReadout.score`, ``regime_boost`` from `RegimeBoost.value`; NaN where unknown), ``y`` 0/1
    outcomes, ``is_major`` booleans. Only rows with all three inputs known are used. A group with fewer
    than ``config.min_rows`` such rows or a single class gets its seed weights (``source="seed"``).
    """
    cfg = config or FusionConfig()
    tab = _as_1d("p_tab", p_tab)
    n = len(tab)
    ctx = _as_1d("context_score", context_score, n)
    regime = _as_1d("regime_boost", regime_boost, n)
    labels = _as_1d("y", y, n)
    major = np.asarray(is_major, dtype=bool).ravel()
    if len(major) != n:
        raise ValueError(f"is_major has {len(major)} rows, expected {n}")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("y must hold 0/1 labels only")
    inputs = np.column_stack([tab, ctx, regime])
    finite = np.all(np.isfinite(inputs), axis=1)
    if np.any((inputs[finite] < 0) | (inputs[finite] > 1)):
        raise ValueError("p_tab, context_score and regime_boost must be probabilities in [0, 1] (or NaN)")
    out: dict[str, FusionWeights] = {}
    for group, members in (("majors", major), ("alts", ~major)):
        rows = finite & members
        seed = cfg.seed(group)
        group_y = labels[rows]
        if rows.sum() < cfg.min_rows or group_y.min(initial=1) == group_y.max(initial=0):
            out[group] = FusionWeights(*seed, source="seed", n_rows=int(rows.sum()))
            continue
        w, loss = _fit_group(inputs[rows], group_y, seed)
        out[group] = FusionWeights(
            float(w[0]), float(w[1]), float(w[2]), source="fitted", n_rows=int(rows.sum()), log_loss=loss
        )
    return out


def fuse(
    weights: dict[str, FusionWeights],
    p_tab: np.ndarray,
    context_score: np.ndarray,
    regime_boost: np.ndarray,
    is_major: np.ndarray,
) -> np.ndarray:
    """Fused P(up) per row: the group's weights applied to the three inputs.

    ``p_tab`` must be known (finite); a NaN ``context_score`` or ``regime_boost`` drops that term and
    renormalizes the remaining weights (all of a row's non-tabular weight on missing inputs: P = p_tab).
    """
    for group in GROUPS:
        if group not in weights:
            raise ValueError(f"weights lacks group {group!r} (need 'majors' and 'alts')")
    tab = _as_1d("p_tab", p_tab)
    n = len(tab)
    if not np.all(np.isfinite(tab)):
        raise ValueError("p_tab must be finite: the tabular tower is the one input fusion cannot do without")
    inputs = np.column_stack([tab, _as_1d("context_score", context_score, n), _as_1d("regime_boost", regime_boost, n)])
    major = np.asarray(is_major, dtype=bool).ravel()
    if len(major) != n:
        raise ValueError(f"is_major has {len(major)} rows, expected {n}")
    w = np.where(major[:, None], np.asarray(weights["majors"].as_tuple()), np.asarray(weights["alts"].as_tuple()))
    known = np.isfinite(inputs)
    w = np.where(known, w, 0.0)
    total = w.sum(axis=1)
    # a row whose only positive weights sit on missing inputs falls back to the tabular tower alone
    w[:, 0] = np.where(total > 0, w[:, 0], 1.0)
    total = np.where(total > 0, total, 1.0)
    return np.clip(np.sum(w * np.nan_to_num(inputs), axis=1) / total, 0.0, 1.0)


@dataclass(frozen=True)
class ContextReadout:
    """f(context) = sigmoid(intercept + coef . context): P(up) from the sequence tower's 4 values."""

    intercept: float
    coef: tuple[float, ...]

    def score(self, context: np.ndarray) -> np.ndarray:
        """(n, k) context values -> (n,) probabilities; NaN where any value of the row is missing."""
        c = np.asarray(context, dtype=np.float64)
        if c.ndim != 2 or c.shape[1] != len(self.coef):
            raise ValueError(f"context must have shape (n, {len(self.coef)}), got {c.shape}")
        z = self.intercept + np.nan_to_num(c) @ np.asarray(self.coef)
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        return np.where(np.all(np.isfinite(c), axis=1), p, np.nan)

    def to_dict(self) -> dict[str, Any]:
        return {"intercept": self.intercept, "coef": list(self.coef)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContextReadout:
        return cls(intercept=float(data["intercept"]), coef=tuple(float(v) for v in data["coef"]))


def fit_context_readout(context: np.ndarray, y: np.ndarray, *, config: FusionConfig | None = None) -> ContextReadout:
    """Logistic regression of 0/1 ``y`` on ``context`` (n, k) over rows with every value known.

    Too few rows (< 10) or a single class gives the constant readout at the base rate (coef 0).
    """
    cfg = config or FusionConfig()
    c = np.asarray(context, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64).ravel()
    if c.ndim != 2 or len(c) != len(labels):
        raise ValueError(f"context must be (n, k) with n = len(y) = {len(labels)}, got {c.shape}")
    rows = np.all(np.isfinite(c), axis=1)
    yk = labels[rows]
    if rows.sum() < 10 or yk.min(initial=1) == yk.max(initial=0):
        base = float(np.clip(yk.mean() if len(yk) else 0.5, _EPS, 1 - _EPS))
        return ContextReadout(intercept=float(np.log(base / (1 - base))), coef=(0.0,) * c.shape[1])
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=cfg.readout_l2, max_iter=200)
    model.fit(c[rows], yk.astype(np.int64))
    return ContextReadout(intercept=float(model.intercept_[0]), coef=tuple(float(v) for v in model.coef_[0]))


@dataclass(frozen=True)
class RegimeBoost:
    """Shrunk up-rate per regime cell: rows are trend sign (-1, 0, +1), columns vol buckets (calm, normal, stormy)."""

    vol_edges: tuple[float, float]
    up_rate: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]

    @staticmethod
    def _cells(
        vol_regime: np.ndarray, trend_regime: np.ndarray, edges: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        vol = np.asarray(vol_regime, dtype=np.float64).ravel()
        trend = np.asarray(trend_regime, dtype=np.float64).ravel()
        if len(vol) != len(trend):
            raise ValueError(f"vol_regime and trend_regime differ in length ({len(vol)} vs {len(trend)})")
        known = np.isfinite(vol) & np.isfinite(trend)
        trend_index = (np.sign(np.nan_to_num(trend)) + 1).astype(np.int64)
        vol_index = np.searchsorted(np.asarray(edges), np.nan_to_num(vol), side="right")
        return trend_index, vol_index, known

    def value(self, vol_regime: np.ndarray, trend_regime: np.ndarray) -> np.ndarray:
        """regime_boost per row (a probability); NaN where either regime feature is missing."""
        t, v, known = self._cells(vol_regime, trend_regime, self.vol_edges)
        table = np.asarray(self.up_rate)
        return np.where(known, table[t, v], np.nan)

    def to_dict(self) -> dict[str, Any]:
        return {"vol_edges": list(self.vol_edges), "up_rate": [list(r) for r in self.up_rate]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegimeBoost:
        rates = [tuple(float(v) for v in row) for row in data["up_rate"]]
        if len(rates) != 3 or any(len(r) != 3 for r in rates):
            raise ValueError("regime boost up_rate must be a 3 x 3 table")
        edges = tuple(float(v) for v in data["vol_edges"])
        return cls(vol_edges=(edges[0], edges[1]), up_rate=(rates[0], rates[1], rates[2]))  # type: ignore[arg-type]


def fit_regime_boost(
    vol_regime: np.ndarray, trend_regime: np.ndarray, y: np.ndarray, *, config: FusionConfig | None = None
) -> RegimeBoost:
    """Up-rate of each regime cell on the given rows, shrunk to 0.5: (ups + m/2) / (n + m), m = prior_strength."""
    cfg = config or FusionConfig()
    t, v, known = RegimeBoost._cells(vol_regime, trend_regime, cfg.vol_regime_edges)
    labels = np.asarray(y, dtype=np.float64).ravel()
    if len(labels) != len(t):
        raise ValueError(f"y has {len(labels)} rows, expected {len(t)}")
    ups = np.zeros((3, 3))
    counts = np.zeros((3, 3))
    np.add.at(ups, (t[known], v[known]), labels[known])
    np.add.at(counts, (t[known], v[known]), 1.0)
    m = cfg.prior_strength
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(counts + m > 0, (ups + m / 2) / (counts + m), 0.5)
    rows = [tuple(float(x) for x in r) for r in rate]
    return RegimeBoost(vol_edges=cfg.vol_regime_edges, up_rate=(rows[0], rows[1], rows[2]))  # type: ignore[arg-type]


def major_mask(symbols: np.ndarray | list[str], majors: tuple[str, ...]) -> np.ndarray:
    """True where a symbol's base asset (``"BTC"`` in ``"BTC/USDT"``) is one of ``majors`` (universe config)."""
    wanted = set(majors)
    return np.array([str(s).split("/")[0] in wanted for s in symbols], dtype=bool)
