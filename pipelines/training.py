"""Tabular direction model: dataset assembly, CatBoost fit, scoring, and the walk-forward retrain.

`train_direction_model` is the quick single time-ordered split (kept for small callers and tests);
`retrain_walk_forward` is what the nightly chain runs (SPEC 7-8): Optuna-tuned, calibrated, evaluated per
walk-forward fold with the fee-aware backtest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from catboost import CatBoostClassifier

from pipelines.backtest import BacktestResult, run_backtest
from pipelines.baseline import BaselineReport, cost_variants, model_and_baselines
from pipelines.config import BacktestConfig, ModelConfig
from pipelines.domain.candles import timeframe_delta
from pipelines.evaluation import ForecastReport
from pipelines.labels import barrier_label, direction_label, tie_share
from pipelines.metrics import ClassificationMetrics, classification_metrics, strategy_sharpe
from pipelines.modeling.calibration import CalibratedClassifier
from pipelines.modeling.folds import (
    FoldContext,
    FoldResult,
    default_params,
    feature_matrix,
    fit_catboost,
    fit_fused_fold,
    forecast_report,
    labeled,
    model_score,
    run_fold,
    tune_fold_params,
)
from pipelines.modeling.fused import FusedModel
from pipelines.promotion import ModelScore
from pipelines.research_config import BaselineConfig, LabelMode
from pipelines.trading.config import TradingConfig
from pipelines.walkforward import plan_windows, time_stratified_sample

log = logging.getLogger(__name__)

TAKER_FEE = 0.001  # 10 bp a side: Binance spot's base taker fee, a conservative cost for the backtest
SIGNAL_EDGE = 0.02  # trade only when p is this far from 0.5


def build_training_set(
    candles: pl.DataFrame,
    features: pl.DataFrame,
    feature_columns: tuple[str, ...],
    horizon_bars: int,
    *,
    label_mode: LabelMode = "exclude_ties",
    round_trip_cost: float = 0.0,
) -> pl.DataFrame:
    """Features joined with the labels, the forward return over the horizon and the bar's OHLC.

    Columns: `symbol`, `ts`, the feature columns, `direction_<h>` (`pipelines.labels.direction_label` in
    `label_mode`; null on a tie with `exclude_ties`), `is_tie`, `barrier_<n>` (SPEC 6 barrier label, null
    near the end), `forward_return`, `open`, `high`, `low`, `close` (the backtest's prices). Rows whose
    horizon is not over yet are dropped; tie rows stay (the backtest trades through them: every bar
    counts) and `labeled` drops them wherever a label is fitted or scored. Sorted by `ts`, `symbol`.
    """
    ordered = candles.sort("symbol", "ts")
    forward = ordered.select(
        "symbol",
        "ts",
        (pl.col("close").shift(-horizon_bars).over("symbol") / pl.col("close") - 1.0).alias("forward_return"),
        "open",
        "high",
        "low",
        "close",
    )
    bar_minutes = _bar_minutes(ordered)
    labels = direction_label(candles, horizon_bars, mode=label_mode, round_trip_cost=round_trip_cost)
    return (
        features.select("symbol", "ts", *feature_columns)
        .join(labels, on=["symbol", "ts"], how="inner")
        .join(barrier_label(ordered, timeframe_minutes=bar_minutes), on=["symbol", "ts"], how="left")
        .join(forward, on=["symbol", "ts"], how="inner")
        .filter(pl.col("forward_return").is_not_null())
        .sort("ts", "symbol")
    )


def _bar_minutes(candles: pl.DataFrame) -> float:
    """Bar length of candles sorted by symbol and ts: the most common spacing within a symbol."""
    gaps = candles.select(pl.col("ts").diff().over("symbol").alias("gap")).drop_nulls()["gap"]
    if gaps.is_empty():
        return 5.0
    return float(gaps.mode().min().total_seconds()) / 60  # type: ignore[union-attr]


def time_ordered_split(
    dataset: pl.DataFrame, test_fraction: float, embargo: int, timeframe: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Train on the earlier part, test on the later part; never shuffled.

    The cut is a timestamp shared by all symbols. Train rows whose label window reaches past the cut
    (the last `embargo` bars before it) are dropped, so no training label sees the test period.
    """
    times = dataset["ts"].unique().sort()
    if len(times) < 10:
        raise ValueError(f"too few bars to split ({len(times)} timestamps)")
    cut: datetime = times[int(len(times) * (1.0 - test_fraction))]
    train_end = cut - embargo * timeframe_delta(timeframe)
    train = dataset.filter(pl.col("ts") < train_end)
    test = dataset.filter(pl.col("ts") >= cut)
    return train, test


@dataclass(frozen=True)
class TrainedModel:
    model: CatBoostClassifier
    feature_columns: tuple[str, ...]
    metrics: ClassificationMetrics
    score: ModelScore
    train_rows: int
    test_rows: int
    test_start: datetime
    test_end: datetime
    test: pl.DataFrame  # the held-out rows, so a champion can be scored on the very same period


def score_model(
    model: CatBoostClassifier,
    test: pl.DataFrame,
    feature_columns: tuple[str, ...],
    horizon_bars: int,
    timeframe: str,
) -> tuple[ClassificationMetrics, ModelScore]:
    scored = labeled(test, f"direction_{horizon_bars}")
    p = model.predict_proba(feature_matrix(scored, feature_columns))[:, 1]
    metrics = classification_metrics(scored[f"direction_{horizon_bars}"].to_numpy(), p)
    bars_per_year = 365 * 86_400 / timeframe_delta(timeframe).total_seconds() / horizon_bars
    # Score each symbol's own time series, then average: a position never spans two symbols.
    sharpes = []
    for _, part in test.sort("symbol", "ts").group_by("symbol", maintain_order=True):
        ps = model.predict_proba(feature_matrix(part, feature_columns))[:, 1]
        sharpes.append(
            strategy_sharpe(
                ps,
                part["forward_return"].to_numpy(),
                threshold=SIGNAL_EDGE,
                fee=TAKER_FEE,
                bars_per_year=bars_per_year,
            )
        )
    sharpe = float(np.mean(sharpes)) if sharpes else 0.0
    return metrics, ModelScore(brier=metrics.brier, ece=metrics.ece, accuracy=metrics.accuracy, sharpe=sharpe)


def train_direction_model(
    dataset: pl.DataFrame,
    feature_columns: tuple[str, ...],
    config: ModelConfig,
    timeframe: str,
    thread_count: int = -1,
) -> TrainedModel:
    """Fit CatBoost on the time-ordered train part and score it on the held-out later part."""
    train, test = time_ordered_split(dataset, config.test_fraction, config.horizon_bars, timeframe)
    label = f"direction_{config.horizon_bars}"
    train = time_stratified_sample(labeled(train, label), config.max_train_rows, seed=config.seed)
    if train.is_empty() or test.is_empty():
        raise ValueError("empty train or test split: not enough history")
    model = fit_catboost(
        feature_matrix(train, feature_columns), train[label].to_numpy(), feature_columns,
        default_params(config), config, thread_count,
    )
    metrics, score = score_model(model, test, feature_columns, config.horizon_bars, timeframe)
    return TrainedModel(
        model=model,
        feature_columns=feature_columns,
        metrics=metrics,
        score=score,
        train_rows=len(train),
        test_rows=len(test),
        test_start=test["ts"].min(),  # type: ignore[arg-type]
        test_end=test["ts"].max(),  # type: ignore[arg-type]
        test=test,
    )


# ---- walk-forward retrain (SPEC 7-8) ------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainResult:
    """A walk-forward retrain. `model` is the last fold's calibrated model (the tabular tower); `fused` the
    fused two-tower model of the last fold when the sequence tower ran, with its forecast `fused_p` on
    `last_test` (the retrain stage picks which one is registered).

    `score` is what promotion compares: Brier, ECE, backtest Sharpe, trades and net return on the last
    fold's test period (the period the champion is scored on as well), accuracy pooled over every fold's
    test rows (more rows make the leakage flag less noisy).
    """

    model: CalibratedClassifier
    feature_columns: tuple[str, ...]
    params: dict[str, Any]
    tuning: dict[str, Any]
    folds: tuple[FoldResult, ...]
    overall: ForecastReport
    overall_raw: ForecastReport
    backtest: BacktestResult
    baseline: BaselineReport
    shuffled_auc: float | None
    score: ModelScore
    last_test: pl.DataFrame
    oos: pl.DataFrame  # every fold's test rows with `p_up` (calibrated) and `p_raw`
    notes: tuple[str, ...]
    feature_importance: tuple[tuple[str, float], ...]
    extra: dict[str, Any]  # sequence tower / fusion figures, costs, tie share
    fused: FusedModel | None = None
    fused_p: np.ndarray | None = None
    history: pl.DataFrame | None = None  # bars before `last_test` (window of the sequence tower)

    def metrics(self) -> dict[str, float]:
        """Overall figures for the parent run."""
        out = self.overall.metrics("oos_") | {
            "oos_raw_ece": self.overall_raw.overall.ece,
            "oos_raw_brier": self.overall_raw.overall.brier,
            "folds": float(len(self.folds)),
            "promotion_brier": self.score.brier,
            "promotion_ece": self.score.ece,
            "promotion_sharpe": self.score.sharpe,
            "promotion_accuracy": self.score.accuracy,
        }
        out |= self.backtest.metrics("bt_") | self.baseline.metrics("baseline_")
        if self.shuffled_auc is not None:
            out["shuffled_auc"] = self.shuffled_auc
        for key, value in self.extra.items():
            if isinstance(value, int | float):
                out[key] = float(value)
        return out


def score_for_promotion(
    model: Any,
    last_test: pl.DataFrame,
    feature_columns: tuple[str, ...],
    label: str,
    *,
    majors: frozenset[str],
    timeframe: str,
    backtest: BacktestConfig,
    trading: TradingConfig,
    history: pl.DataFrame | None = None,
    long_only: bool = False,
) -> tuple[ModelScore, ForecastReport, BacktestResult]:
    """Brier, ECE, accuracy and backtest figures of any served model on a test period (champion or not).

    A fused model (`predict_frame`) is scored fused when `history` (the bars before the period) is given.
    """
    if history is not None and hasattr(model, "predict_frame"):
        p = np.asarray(model.predict_frame(history, last_test))
    else:
        p = np.asarray(model.predict_proba(feature_matrix(last_test, feature_columns)))[:, 1]
    report = forecast_report(last_test, p, label)
    result = run_backtest(
        last_test, p, majors=majors, timeframe=timeframe, config=backtest, trading=trading, long_only=long_only
    )
    return model_score(report, result), report, result


def retrain_walk_forward(
    dataset: pl.DataFrame,
    feature_columns: tuple[str, ...],
    config: ModelConfig,
    timeframe: str,
    *,
    majors: frozenset[str],
    backtest: BacktestConfig,
    trading: TradingConfig,
    thread_count: int = -1,
    baseline: BaselineConfig | None = None,
) -> RetrainResult:
    """Tune, fit, calibrate and evaluate the tabular tower walk-forward (SPEC 7-8).

    1. Windows: `plan_windows` over the dataset's bar times (train `train_months`, test and step
       `test_days`, embargo >= horizon), shrunk with a note when the history is shorter.
    2. Hyperparameters: Optuna (`tune_catboost`, expanding never-shuffled CV) on the rows before the
       first fold's test period only, so no test row ever informs them; `optuna_trials=0` keeps the
       configured defaults.
    3. Per fold: CatBoost on the training window minus its latest `calibration_share` (and an embargo),
       time-stratified down to `max_train_rows` so the fit spans the whole window; a calibrator
       (isotonic or Platt, lower held-back Brier) fitted on the held-back part, then the test report
       (labelled rows: ties left out) and the fee-aware backtest (every bar) against the random baseline
       over `baseline.seeds` seeds.
    4. A shuffled-label control (same params, labels permuted) on the last fold; its AUC should be 0.5.
    5. The sequence tower + fusion on the last fold (`config.sequence_tower`): `fused`, `fused_p`.
    Raises ValueError when the history does not hold one fold.
    """
    started = time.perf_counter()
    bar = timeframe_delta(timeframe)
    times = dataset["ts"]
    first: datetime = times.min()  # type: ignore[assignment]
    last: datetime = times.max()  # type: ignore[assignment]
    plan = plan_windows(
        first,
        last + bar,
        folds=config.folds,
        train_span=timedelta(days=30 * config.train_months),
        test_span=timedelta(days=config.test_days),
        embargo=config.embargo * bar,
        expanding=config.expanding,
        max_test_share=config.max_test_share,
        min_train_span=timedelta(days=config.min_train_days),
    )
    notes = list(plan.notes)
    ctx = FoldContext(
        feature_columns, config, f"direction_{config.horizon_bars}", config.embargo * bar, {}, majors, timeframe,
        backtest, trading, baseline or BaselineConfig(), thread_count,
    )
    params, tuning = tune_fold_params(dataset, plan.windows[0].train_end, ctx, notes)
    ctx = replace(ctx, params=params)
    for note in notes:
        log.info("retrain: %s", note)

    folds: list[FoldResult] = []
    oos_parts: list[pl.DataFrame] = []
    model: CalibratedClassifier | None = None
    last_fit: pl.DataFrame | None = None
    for window in plan.windows:
        done = run_fold(dataset, window, ctx, notes)
        if done is not None:
            fold, model, last_fit, part = done
            folds.append(fold)
            oos_parts.append(part)
    if model is None or last_fit is None:
        raise ValueError("no walk-forward fold could be trained: " + "; ".join(notes))

    label = ctx.label
    oos = pl.concat(oos_parts)
    last_test = oos_parts[-1]
    p_oos = oos["p_up"].to_numpy()
    overall = forecast_report(oos, p_oos, label)
    bt_all, base_all = model_and_baselines(
        oos, p_oos, majors=majors, timeframe=timeframe, config=backtest, trading=trading, baseline=ctx.baseline
    )
    extra: dict[str, Any] = {
        "label_tie_share": tie_share(dataset) if "is_tie" in dataset.columns else 0.0,
        "fit_days_per_fold": float(np.mean([f.fit_days for f in folds])),
        "fit_rows_per_fold": float(np.mean([f.fit_rows for f in folds])),
    }
    extra |= cost_variants(
        oos, p_oos, majors=majors, timeframe=timeframe, config=backtest, trading=trading, baseline=ctx.baseline,
        taker=bt_all,
    )
    window = folds[-1].window
    history = dataset.filter((pl.col("ts") < window.test_start) & (pl.col("ts") >= window.test_start - 200 * bar))
    fused: FusedModel | None = None
    fused_p: np.ndarray | None = None
    if config.sequence_tower:
        fused, fused_p, figures = fit_fused_fold(dataset, window, last_test, model, ctx, notes)
        extra |= figures

    shuffled_auc = None
    if config.shuffled_control:
        rng = np.random.default_rng(config.seed)
        control = fit_catboost(
            feature_matrix(last_fit, feature_columns), rng.permutation(last_fit[label].to_numpy()), feature_columns,
            params, config, thread_count,
        )
        scored = labeled(last_test, label)
        p_control = control.predict_proba(feature_matrix(scored, feature_columns))[:, 1]
        shuffled_auc = classification_metrics(scored[label].to_numpy(), p_control).auc

    last_fold = folds[-1]
    score = model_score(last_fold.report, last_fold.backtest, accuracy=overall.overall.accuracy)
    importance = model.model.get_feature_importance()
    ranked = tuple(sorted(zip(feature_columns, (float(v) for v in importance), strict=True), key=lambda kv: -kv[1]))
    log.info("retrain done in %.1fs: %d folds, %d OOS rows", time.perf_counter() - started, len(folds), len(oos))
    return RetrainResult(
        model=model,
        feature_columns=feature_columns,
        params=params,
        tuning=tuning,
        folds=tuple(folds),
        overall=overall,
        overall_raw=forecast_report(oos, oos["p_raw"].to_numpy(), label),
        backtest=bt_all,
        baseline=base_all,
        shuffled_auc=shuffled_auc,
        score=score,
        last_test=last_test,
        oos=oos,
        notes=tuple(notes),
        feature_importance=ranked,
        extra=extra | {"seconds": time.perf_counter() - started},
        fused=fused,
        fused_p=fused_p,
        history=history,
    )


