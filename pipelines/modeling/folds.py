"""The pieces of one walk-forward fold (SPEC 7-8): fit, calibrate, evaluate, baseline, and the fused tower.

`pipelines.training.retrain_walk_forward` runs them over the planned windows. Ties (rows without a label)
stay in every frame for the backtest and are dropped (`labeled`) wherever a label is fitted or scored.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from catboost import CatBoostClassifier, Pool

from pipelines.backtest import BacktestResult, run_backtest
from pipelines.baseline import BaselineReport, model_and_baselines
from pipelines.config import BacktestConfig, ModelConfig
from pipelines.domain.candles import timeframe_delta
from pipelines.evaluation import ForecastReport, evaluate_forecast
from pipelines.modeling.calibration import CalibratedClassifier, fit_calibrator
from pipelines.modeling.fused import FusedModel, fit_fused_model
from pipelines.modeling.tuning import tune_catboost
from pipelines.promotion import ModelScore
from pipelines.research_config import BaselineConfig
from pipelines.trading.config import TradingConfig
from pipelines.walkforward import Window, time_stratified_sample

log = logging.getLogger(__name__)


def labeled(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    """The rows with a label (ties dropped): what is fitted on and what metrics are computed on."""
    return frame.filter(pl.col(label).is_not_null())


def feature_matrix(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    # Nulls become NaN, which CatBoost treats as missing (nan_mode="Min"); inf never gets here.
    return frame.select(columns).to_numpy().astype(np.float64)


@dataclass(frozen=True)
class FoldResult:
    """One walk-forward fold: the calibrated model's test report, the raw one, and the backtests."""

    window: Window
    report: ForecastReport
    raw_report: ForecastReport
    backtest: BacktestResult
    baseline: BaselineReport
    calibration_method: str
    calibration_briers: dict[str, float]
    fit_rows: int
    fit_days: float  # span of the fit sample's bars (it covers the training window: time-stratified cap)
    calibration_rows: int
    test_rows: int
    test_tie_rows: int  # test bars without a label (ties): traded through, left out of the metrics
    seconds: float

    def metrics(self) -> dict[str, float]:
        return (
            self.report.metrics("oos_")
            | {"raw_ece": self.raw_report.overall.ece, "raw_brier": self.raw_report.overall.brier}
            | self.backtest.metrics("bt_")
            | self.baseline.metrics("baseline_")
            | {f"calibration_{k}": v for k, v in self.calibration_briers.items()}
            | {"fit_rows": float(self.fit_rows), "fit_days": self.fit_days}
            | {"calibration_rows": float(self.calibration_rows), "test_tie_rows": float(self.test_tie_rows)}
            | {"seconds": self.seconds}
        )


def fit_catboost(
    x: np.ndarray,
    y: np.ndarray,
    feature_columns: tuple[str, ...],
    params: dict[str, Any],
    config: ModelConfig,
    thread_count: int,
) -> CatBoostClassifier:
    model = CatBoostClassifier(
        **params,
        rsm=config.rsm,
        random_seed=config.seed,
        loss_function="Logloss",
        verbose=False,
        allow_writing_files=False,
        thread_count=thread_count,
    )
    model.fit(Pool(x, y, feature_names=list(feature_columns)))
    return model


def default_params(config: ModelConfig) -> dict[str, Any]:
    """The configured CatBoost parameters (what a fold fits when it is not tuned)."""
    return {
        "iterations": config.iterations,
        "learning_rate": config.learning_rate,
        "depth": config.depth,
        "l2_leaf_reg": config.l2_leaf_reg,
    }


def forecast_report(frame: pl.DataFrame, p: np.ndarray, label: str) -> ForecastReport:
    """The forecast report over the labelled rows of `frame` (`p` has one value per row; ties left out)."""
    known = frame[label].is_not_null().to_numpy()
    part = frame.filter(pl.Series(known))
    vol = part["vol_regime"].to_numpy() if "vol_regime" in part.columns else np.full(len(part), np.nan)
    return evaluate_forecast(part[label].to_numpy(), np.asarray(p)[known], part["ts"], vol)


def model_score(report: ForecastReport, result: BacktestResult, accuracy: float | None = None) -> ModelScore:
    return ModelScore(
        brier=report.overall.brier,
        ece=report.overall.ece,
        accuracy=report.overall.accuracy if accuracy is None else accuracy,
        sharpe=result.sharpe,
        trades=result.trades,
        total_return=result.total_return,
    )


@dataclass(frozen=True)
class FoldContext:
    """What every fold shares."""

    feature_columns: tuple[str, ...]
    config: ModelConfig
    label: str
    embargo: timedelta
    params: dict[str, Any]
    majors: frozenset[str]
    timeframe: str
    backtest: BacktestConfig
    trading: TradingConfig
    baseline: BaselineConfig
    thread_count: int


def run_fold(
    dataset: pl.DataFrame, window: Window, ctx: FoldContext, notes: list[str]
) -> tuple[FoldResult, CalibratedClassifier, pl.DataFrame, pl.DataFrame] | None:
    """Fit, calibrate and evaluate one fold; None (with a note) when a part is empty."""
    started = time.perf_counter()
    cfg, label = ctx.config, ctx.label
    train = dataset.filter((pl.col("ts") >= window.train_start) & (pl.col("ts") < window.train_end))
    test = dataset.filter((pl.col("ts") >= window.test_start) & (pl.col("ts") < window.test_end))
    calibration_start = window.train_end - (window.train_end - window.train_start) * cfg.calibration_share
    # The whole fit window, subsampled evenly per day when it holds more than max_train_rows labelled rows.
    fit = time_stratified_sample(
        labeled(train.filter(pl.col("ts") < calibration_start - ctx.embargo), label), cfg.max_train_rows, seed=cfg.seed
    )
    held = labeled(train.filter(pl.col("ts") >= calibration_start), label)
    if fit.is_empty() or held.is_empty() or test.is_empty():
        notes.append(f"{window.describe()} skipped: an empty fit, calibration or test part")
        return None
    cat = fit_catboost(
        feature_matrix(fit, ctx.feature_columns), fit[label].to_numpy(), ctx.feature_columns, ctx.params, cfg,
        ctx.thread_count,
    )
    calibrator, briers = fit_calibrator(
        cat.predict_proba(feature_matrix(held, ctx.feature_columns))[:, 1], held[label].to_numpy()
    )
    model = CalibratedClassifier(cat, calibrator, feature_names=ctx.feature_columns)
    p_raw = cat.predict_proba(feature_matrix(test, ctx.feature_columns))[:, 1]
    p = calibrator.transform(p_raw)
    bt, base = model_and_baselines(
        test, p, majors=ctx.majors, timeframe=ctx.timeframe, config=ctx.backtest, trading=ctx.trading,
        baseline=ctx.baseline,
    )
    span: timedelta = fit["ts"].max() - fit["ts"].min()  # type: ignore[operator,assignment]
    fold = FoldResult(
        window=window,
        report=forecast_report(test, p, label),
        raw_report=forecast_report(test, p_raw, label),
        backtest=bt,
        baseline=base,
        calibration_method=calibrator.method,
        calibration_briers=briers,
        fit_rows=len(fit),
        fit_days=span.total_seconds() / 86_400,
        calibration_rows=len(held),
        test_rows=len(test),
        test_tie_rows=int(test[label].is_null().sum()),
        seconds=time.perf_counter() - started,
    )
    log.info(
        "retrain %s: fit %d rows over %.1f days, auc %.4f, ece %.4f, sharpe %.2f (%d trades), baseline %.2f +- %.2f",
        window.describe(), fold.fit_rows, fold.fit_days, fold.report.overall.auc, fold.report.overall.ece,
        bt.sharpe, bt.trades, base.sharpe_mean, base.sharpe_std,
    )
    oos = test.with_columns(pl.Series("p_up", p), pl.Series("p_raw", p_raw))
    return fold, model, fit, oos


def tune_fold_params(
    dataset: pl.DataFrame, first_train_end: datetime, ctx: FoldContext, notes: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = ctx.config
    if cfg.optuna_trials <= 0:
        return default_params(cfg), {"trials": 0}
    before = labeled(dataset.filter(pl.col("ts") < first_train_end), ctx.label)
    try:
        tuned = tune_catboost(
            feature_matrix(before, ctx.feature_columns),
            before[ctx.label].to_numpy(),
            before["ts"].dt.epoch("us").to_numpy(),
            n_trials=cfg.optuna_trials,
            n_folds=cfg.optuna_cv_folds,
            embargo=cfg.embargo,
            seed=cfg.seed,
            timeout_s=cfg.optuna_timeout_s,
            max_rows=cfg.tune_max_rows,
            thread_count=ctx.thread_count,
            rsm=cfg.rsm,
        )
    except ValueError as exc:  # too little history before the first fold for the CV folds
        notes.append(f"Optuna skipped ({exc}); using the configured CatBoost defaults")
        return default_params(cfg), {"trials": 0}
    return dict(tuned.best_params), {
        "trials": tuned.n_trials,
        "best_logloss": tuned.best_score,
        "seconds": tuned.seconds,
        "rows": tuned.n_rows,
        "table": tuned.trials,
    }


def fit_fused_fold(
    dataset: pl.DataFrame, window: Window, last_test: pl.DataFrame, model: CalibratedClassifier, ctx: FoldContext,
    notes: list[str],
) -> tuple[FusedModel | None, np.ndarray | None, dict[str, Any]]:
    """Sequence tower + fusion on the last fold (SPEC 7), scored out of sample like the tabular tower.

    The tower trains on rows before the fold's calibration part (minus the embargo); the readout and the
    fusion weights (majors vs alts) are fitted on the validation part (its latest `test_days`, to bound
    the cost), and the fused forecast is scored on the test rows with the same report and backtest.
    """
    cfg = ctx.config
    calibration_start = window.train_end - (window.train_end - window.train_start) * cfg.calibration_share
    try:
        fit = fit_fused_model(
            dataset,
            train_start=window.train_start,
            calibration_start=calibration_start,
            validation_start=max(calibration_start, window.train_end - timedelta(days=cfg.test_days)),
            train_end=window.train_end,
            test=last_test,
            tabular=model,
            feature_columns=ctx.feature_columns,
            label=ctx.label,
            embargo=ctx.embargo,
            bar=timeframe_delta(ctx.timeframe),
            majors=ctx.majors,
            seed=cfg.seed,
            max_windows=cfg.sequence_max_windows,
            epochs=cfg.sequence_epochs,
        )
    except ValueError as exc:
        notes.append(f"sequence tower skipped: {exc}")
        return None, None, {}
    report = forecast_report(last_test, fit.p_test, ctx.label)
    result = run_backtest(
        last_test, fit.p_test, majors=ctx.majors, timeframe=ctx.timeframe, config=ctx.backtest,
        trading=ctx.trading, long_only=ctx.baseline.long_only,
    )
    tabular = forecast_report(last_test, last_test["p_up"].to_numpy(), ctx.label)
    out: dict[str, Any] = {
        "fused_auc": report.overall.auc,
        "fused_brier": report.overall.brier,
        "fused_ece": report.overall.ece,
        "fused_accuracy": report.overall.accuracy,
        "fused_sharpe": result.sharpe,
        "fused_trades": float(result.trades),
        "fused_total_return": result.total_return,
        "fused_vs_tabular_brier": report.overall.brier - tabular.overall.brier,
        "sequence_fit_seconds": fit.fit_seconds,
        "sequence_fusion_seconds": fit.seconds,
    }
    for group, w in fit.model.weights.items():
        out |= {f"fusion_{group}_w_tabular": w.as_tuple()[0], f"fusion_{group}_w_context": w.as_tuple()[1],
                f"fusion_{group}_w_regime": w.as_tuple()[2]}
    out["fusion_weights"] = {group: w.to_dict() for group, w in fit.model.weights.items()}
    return fit.model, fit.p_test, out
