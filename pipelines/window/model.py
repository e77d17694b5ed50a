"""The window model: walk-forward CatBoost + calibration on the window dataset, its evaluation and gate.

Per fold (`pipelines.walkforward.plan_windows`, embargo = one window so no training label has seen the
test period): CatBoost (`pipelines.modeling.folds.fit_catboost`, the directional model's fit) on the training
window minus its latest `calibration_share`, calibrated on that held-back part by isotonic or Platt,
whichever has the lower Brier (`pipelines.modeling.calibration.fit_calibrator`), scored on the test
window. Pooled out-of-sample: Brier, ECE, AUC, accuracy; Brier skill against 0.5 (1 - Brier / 0.25) and,
on rows with a recorded market price of the Up token, against that price. A shuffled-label control
(the last fold refitted on permuted labels) must score an AUC near 0.5.

Gate (`window_gate`): the SPEC 8 rules that apply to a probability model without a bar-level backtest:
no leakage flag, ECE <= `max_ece`, Brier <= the
champion's on the same test window (+ `max_brier_worsening`); with no champion and
`bootstrap_without_champion`, only the leakage flag blocks. The decision also says whether the new
champion is tradeable (recorded as the version's `tradeable` tag, what serving's `SignalEvent.tradeable`
carries): it passed every rule that applies, i.e. a bootstrap with an ECE above `max_ece` is signals only.

Leakage flag: pooled out-of-sample accuracy above `leakage_accuracy` (60%) on the rows scored at the
window's open (time_decay = 1). Those rows are SPEC 7's case, a 5-minute direction forecast from data
before the window. Rows later in the window legitimately do better (price_vs_open already shows most
of the move), so including them would flag every honest 1-minute model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipelines.config import ModelConfig, PromotionConfig
from pipelines.metrics import ClassificationMetrics, classification_metrics
from pipelines.modeling.calibration import CalibratedClassifier, fit_calibrator
from pipelines.modeling.folds import fit_catboost
from pipelines.walkforward import Window, plan_windows
from pipelines.window import MODEL_NAME, SYMBOL
from pipelines.window.dataset import LABEL, WINDOW_FEATURES

log = logging.getLogger(__name__)


class WindowModelConfig(BaseModel):
    """Window model settings (SPEC 7 CatBoost defaults; walk-forward spans in days)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = MODEL_NAME
    symbol: str = SYMBOL
    window_s: int = Field(default=300, gt=0)
    train_days: float = Field(default=60.0, gt=0)
    test_days: float = Field(default=7.0, gt=0)
    folds: int = Field(default=4, ge=1)
    expanding: bool = False
    min_train_days: float = Field(default=2.0, gt=0)
    max_test_share: float = Field(default=0.3, gt=0, lt=1)
    calibration_share: float = Field(default=0.15, gt=0.05, lt=0.5)
    iterations: int = Field(default=500, ge=10, le=5000)
    learning_rate: float = Field(default=0.08, gt=0, le=1)
    depth: int = Field(default=6, ge=1, le=12)
    l2_leaf_reg: float = Field(default=5.0, ge=0)
    rsm: float = Field(default=0.85, gt=0, le=1)
    seed: int = 42
    threads: int = Field(default=2, ge=1)
    shuffled_control: bool = True

    def catboost(self) -> tuple[ModelConfig, dict[str, Any]]:
        model = ModelConfig(name=self.name, rsm=self.rsm, seed=self.seed)
        params = {
            "iterations": self.iterations,
            "learning_rate": self.learning_rate,
            "depth": self.depth,
            "l2_leaf_reg": self.l2_leaf_reg,
        }
        return model, params


@dataclass(frozen=True)
class WindowFold:
    window: Window
    metrics: ClassificationMetrics
    calibration: str
    train_rows: int
    test_rows: int


@dataclass(frozen=True)
class WindowEvaluation:
    model: CalibratedClassifier[Any]  # the last fold's calibrated model: what is served
    feature_columns: tuple[str, ...]
    folds: tuple[WindowFold, ...]
    oos: pl.DataFrame  # test rows of every fold with p_raw and p_up
    last_test: pl.DataFrame
    overall: ClassificationMetrics
    windows: int  # distinct windows scored out of sample
    brier_skill_vs_half: float
    brier_skill_vs_market: float | None
    market_rows: int
    shuffled_auc: float | None
    open_accuracy: float  # accuracy of the rows scored at the window's open (the leakage check's figure)
    leakage: bool
    notes: tuple[str, ...] = field(default=())

    def metrics(self) -> dict[str, float]:
        out = {
            "oos_brier": self.overall.brier,
            "oos_ece": self.overall.ece,
            "oos_auc": self.overall.auc,
            "oos_accuracy": self.overall.accuracy,
            "oos_log_loss": self.overall.log_loss,
            "oos_rows": float(self.overall.n),
            "windows": float(self.windows),
            "brier_skill_vs_half": self.brier_skill_vs_half,
            "market_rows": float(self.market_rows),
            "open_accuracy": self.open_accuracy,
            "leakage_flag": float(self.leakage),
        }
        if self.brier_skill_vs_market is not None:
            out["brier_skill_vs_market"] = self.brier_skill_vs_market
        if self.shuffled_auc is not None:
            out["shuffled_auc"] = self.shuffled_auc
        return out


def _matrix(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    return frame.select(columns).to_numpy().astype(np.float64)


def fit_calibrated(
    train: pl.DataFrame, columns: tuple[str, ...], cfg: WindowModelConfig
) -> tuple[CalibratedClassifier[Any], str]:
    """CatBoost on the earlier part of `train` (time-ordered), calibrated on its latest share."""
    ordered = train.sort("ts")
    cut = int(ordered.height * (1.0 - cfg.calibration_share))
    fit_part, cal_part = ordered.slice(0, cut), ordered.slice(cut)
    model_cfg, params = cfg.catboost()
    model = fit_catboost(
        _matrix(fit_part, columns), fit_part[LABEL].to_numpy(), columns, params, model_cfg, cfg.threads
    )
    p_cal = model.predict_proba(_matrix(cal_part, columns))[:, 1]
    calibrator, _ = fit_calibrator(p_cal, cal_part[LABEL].to_numpy())
    return CalibratedClassifier(model, calibrator, columns), calibrator.method


def _shuffled_auc(train: pl.DataFrame, test: pl.DataFrame, columns: tuple[str, ...], cfg: WindowModelConfig) -> float:
    labels = np.random.default_rng(cfg.seed).permutation(train[LABEL].to_numpy())
    model_cfg, params = cfg.catboost()
    model = fit_catboost(_matrix(train, columns), labels, columns, params, model_cfg, cfg.threads)
    return classification_metrics(test[LABEL].to_numpy(), model.predict_proba(_matrix(test, columns))[:, 1]).auc


def brier_skill(p: np.ndarray, y: np.ndarray, reference: np.ndarray) -> float:
    """1 - Brier(p) / Brier(reference): > 0 when p beats the reference forecast."""
    ref = float(np.mean((reference - y) ** 2))
    return float(1.0 - np.mean((p - y) ** 2) / ref) if ref > 0 else 0.0


def _plan(dataset: pl.DataFrame, cfg: WindowModelConfig) -> tuple[tuple[Window, ...], tuple[str, ...]]:
    start, end = dataset["ts"].min(), dataset["ts"].max()
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise ValueError("the window dataset has no scoring rows")
    plan = plan_windows(
        start,
        end + timedelta(seconds=1),
        folds=cfg.folds,
        train_span=timedelta(days=cfg.train_days),
        test_span=timedelta(days=cfg.test_days),
        embargo=timedelta(seconds=cfg.window_s),
        expanding=cfg.expanding,
        max_test_share=cfg.max_test_share,
        min_train_span=timedelta(days=cfg.min_train_days),
    )
    return plan.windows, plan.notes


def evaluate_walk_forward(
    dataset: pl.DataFrame,
    cfg: WindowModelConfig,
    promotion: PromotionConfig,
    columns: tuple[str, ...] = WINDOW_FEATURES,
) -> WindowEvaluation:
    """Walk-forward train/calibrate/score of `window_dataset` rows; see the module docstring."""
    windows, notes = _plan(dataset, cfg)
    ts = pl.col("ts")
    folds, parts = [], []
    model: CalibratedClassifier[Any] | None = None
    train = test = dataset.clear()
    for window in windows:
        train = dataset.filter((ts >= window.train_start) & (ts < window.train_end))
        test = dataset.filter((ts >= window.test_start) & (ts < window.test_end))
        if test.is_empty() or train[LABEL].n_unique() < 2:
            continue
        model, method = fit_calibrated(train, columns, cfg)
        x = _matrix(test, columns)
        p_up = model.predict_proba(x)[:, 1]
        parts.append(test.with_columns(pl.Series("p_raw", model.predict_raw(x)), pl.Series("p_up", p_up)))
        metrics = classification_metrics(test[LABEL].to_numpy(), p_up)
        folds.append(WindowFold(window, metrics, method, train.height, test.height))
        log.info("window model %s: brier %.5f auc %.3f (%s)", window.describe(), metrics.brier, metrics.auc, method)
    if model is None:
        raise ValueError("no walk-forward fold had both classes in training and rows to test")
    oos = pl.concat(parts)
    return _summarize(oos, model, columns, tuple(folds), test, train, cfg, promotion, notes)


def _summarize(
    oos: pl.DataFrame,
    model: CalibratedClassifier[Any],
    columns: tuple[str, ...],
    folds: tuple[WindowFold, ...],
    last_test: pl.DataFrame,
    last_train: pl.DataFrame,
    cfg: WindowModelConfig,
    promotion: PromotionConfig,
    notes: tuple[str, ...],
) -> WindowEvaluation:
    y, p = oos[LABEL].to_numpy().astype(float), oos["p_up"].to_numpy()
    overall = classification_metrics(y, p)
    market_skill, market_rows = None, 0
    if "market_price" in oos.columns:
        priced = oos.filter(pl.col("market_price").is_not_null())
        market_rows = priced.height
        if market_rows:
            market_skill = brier_skill(
                priced["p_up"].to_numpy(), priced[LABEL].to_numpy().astype(float), priced["market_price"].to_numpy()
            )
    shuffled = _shuffled_auc(last_train, last_test, columns, cfg) if cfg.shuffled_control else None
    opening = oos.filter(pl.col("time_decay") >= 1.0)
    open_accuracy = open_rows_accuracy(opening) if opening.height else overall.accuracy
    return WindowEvaluation(
        model=model,
        feature_columns=columns,
        folds=folds,
        oos=oos,
        last_test=last_test,
        overall=overall,
        windows=oos.select(pl.struct("symbol", "window_start").n_unique()).item(),
        brier_skill_vs_half=brier_skill(p, y, np.full(len(y), 0.5)),
        brier_skill_vs_market=market_skill,
        market_rows=market_rows,
        shuffled_auc=shuffled,
        open_accuracy=open_accuracy,
        leakage=open_accuracy > promotion.leakage_accuracy,
        notes=notes,
    )


@dataclass(frozen=True)
class GateDecision:
    """`promote`: the challenger becomes the champion. `tradeable`: it passed the whole gate (a bootstrap
    promotion that skipped the ECE rule is served as signals only: the window strategies never trade it)."""

    promote: bool
    reasons: tuple[str, ...]
    tradeable: bool = False

    @property
    def summary(self) -> str:
        verdict = "promote" if self.promote else "keep champion"
        if self.promote:
            verdict += " (tradeable)" if self.tradeable else " (signals only, not tradeable)"
        return verdict + ": " + "; ".join(self.reasons)


def open_rows_accuracy(rows: pl.DataFrame) -> float:
    return float(((rows["p_up"] >= 0.5).cast(pl.Int8) == rows[LABEL]).mean())  # type: ignore[arg-type]


def window_gate(
    challenger: ClassificationMetrics,
    champion: ClassificationMetrics | None,
    promotion: PromotionConfig,
    *,
    open_accuracy: float,
) -> GateDecision:
    """The promotion decision for the window model (both scored on the same last test window).

    `open_accuracy`: the challenger's pooled out-of-sample accuracy at the window open (leakage check).
    """
    reasons, blocked = [], False
    if open_accuracy > promotion.leakage_accuracy:
        blocked = True
        reasons.append(
            f"leakage flag: accuracy {open_accuracy:.3f} at the window open > {promotion.leakage_accuracy:.2f}"
        )
    if champion is None and promotion.bootstrap_without_champion:
        calibrated = challenger.ece <= promotion.max_ece
        if not blocked:
            reasons.append(f"no champion: bootstrap (brier {challenger.brier:.5f}, ece {challenger.ece:.4f})")
            if not calibrated:
                reasons.append(f"not tradeable: ece {challenger.ece:.4f} > {promotion.max_ece}")
        return GateDecision(not blocked, tuple(reasons), tradeable=not blocked and calibrated)
    if challenger.ece > promotion.max_ece:
        blocked = True
        reasons.append(f"ece {challenger.ece:.4f} > {promotion.max_ece}")
    if champion is not None and challenger.brier > champion.brier + promotion.max_brier_worsening:
        blocked = True
        reasons.append(f"brier {challenger.brier:.5f} > champion {champion.brier:.5f}")
    if not blocked:
        reasons.append(f"brier {challenger.brier:.5f}, ece {challenger.ece:.4f} pass")
    return GateDecision(not blocked, tuple(reasons), tradeable=not blocked)
