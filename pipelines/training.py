"""Tabular direction model: dataset assembly, CatBoost fit, scoring, and the walk-forward retrain.

`train_direction_model` is the quick single time-ordered split (kept for small callers and tests);
`retrain_walk_forward` is what the nightly chain runs (SPEC 7-8): Optuna-tuned, calibrated, evaluated per
walk-forward fold with the fee-aware backtest.
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

from pipelines.backtest import BacktestResult, model_and_baseline, run_backtest
from pipelines.config import BacktestConfig, ModelConfig
from pipelines.domain.candles import timeframe_delta
from pipelines.evaluation import ForecastReport, evaluate_forecast
from pipelines.labels import barrier_label, direction_label
from pipelines.metrics import ClassificationMetrics, classification_metrics, strategy_sharpe
from pipelines.modeling.calibration import CalibratedClassifier, fit_calibrator
from pipelines.modeling.tuning import tune_catboost
from pipelines.promotion import ModelScore
from pipelines.trading.config import TradingConfig
from pipelines.walkforward import Window, plan_windows

log = logging.getLogger(__name__)

TAKER_FEE = 0.001  # 10 bp a side: Binance spot's base taker fee, a conservative cost for the backtest
SIGNAL_EDGE = 0.02  # trade only when p is this far from 0.5


def build_training_set(
    candles: pl.DataFrame, features: pl.DataFrame, feature_columns: tuple[str, ...], horizon_bars: int
) -> pl.DataFrame:
    """Features joined with the labels, the forward return over the horizon and the bar's OHLC.

    Columns: `symbol`, `ts`, the feature columns, `direction_<h>` (rows without it are dropped),
    `barrier_<n>` (SPEC 6 barrier label, null near the end), `forward_return`, `open`, `high`, `low`,
    `close` (the backtest's prices). Sorted by `ts`, `symbol`.
    """
    label = f"direction_{horizon_bars}"
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
    return (
        features.select("symbol", "ts", *feature_columns)
        .join(direction_label(candles, horizon_bars), on=["symbol", "ts"], how="inner")
        .join(barrier_label(ordered, timeframe_minutes=bar_minutes), on=["symbol", "ts"], how="left")
        .join(forward, on=["symbol", "ts"], how="inner")
        .filter(pl.col(label).is_not_null())
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


def _matrix(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    # Nulls become NaN, which CatBoost treats as missing (nan_mode="Min"); inf never gets here.
    return frame.select(columns).to_numpy().astype(np.float64)


def score_model(
    model: CatBoostClassifier,
    test: pl.DataFrame,
    feature_columns: tuple[str, ...],
    horizon_bars: int,
    timeframe: str,
) -> tuple[ClassificationMetrics, ModelScore]:
    p = model.predict_proba(_matrix(test, feature_columns))[:, 1]
    y = test[f"direction_{horizon_bars}"].to_numpy()
    metrics = classification_metrics(y, p)
    bars_per_year = 365 * 86_400 / timeframe_delta(timeframe).total_seconds() / horizon_bars
    # Score each symbol's own time series, then average: a position never spans two symbols.
    sharpes = []
    for _, part in test.sort("symbol", "ts").group_by("symbol", maintain_order=True):
        ps = model.predict_proba(_matrix(part, feature_columns))[:, 1]
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
    if len(train) > config.max_train_rows:
        train = train.tail(config.max_train_rows)  # most recent rows: the market drifts
    if train.is_empty() or test.is_empty():
        raise ValueError("empty train or test split: not enough history")
    label = f"direction_{config.horizon_bars}"
    model = CatBoostClassifier(
        iterations=config.iterations,
        learning_rate=config.learning_rate,
        depth=config.depth,
        l2_leaf_reg=config.l2_leaf_reg,
        rsm=config.rsm,
        random_seed=config.seed,
        loss_function="Logloss",
        verbose=False,
        allow_writing_files=False,
        thread_count=thread_count,
    )
    model.fit(
        Pool(_matrix(train, feature_columns), train[label].to_numpy(), feature_names=list(feature_columns))
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
class FoldResult:
    """One walk-forward fold: the calibrated model's test report, the raw one, and the backtests."""

    window: Window
    report: ForecastReport
    raw_report: ForecastReport
    backtest: BacktestResult
    baseline: BacktestResult
    calibration_method: str
    calibration_briers: dict[str, float]
    fit_rows: int
    calibration_rows: int
    test_rows: int
    seconds: float

    def metrics(self) -> dict[str, float]:
        return (
            self.report.metrics("oos_")
            | {"raw_ece": self.raw_report.overall.ece, "raw_brier": self.raw_report.overall.brier}
            | self.backtest.metrics("bt_")
            | self.baseline.metrics("baseline_")
            | {f"calibration_{k}": v for k, v in self.calibration_briers.items()}
            | {"fit_rows": float(self.fit_rows), "calibration_rows": float(self.calibration_rows)}
            | {"seconds": self.seconds}
        )


@dataclass(frozen=True)
class RetrainResult:
    """A walk-forward retrain. `model` is the last fold's calibrated model: the one served and compared.

    `score` is what promotion compares: Brier, ECE and backtest Sharpe on the last fold's test period
    (the period the champion is scored on as well), accuracy pooled over every fold's test rows (more
    rows make the leakage flag less noisy).
    """

    model: CalibratedClassifier
    feature_columns: tuple[str, ...]
    params: dict[str, Any]
    tuning: dict[str, Any]
    folds: tuple[FoldResult, ...]
    overall: ForecastReport
    overall_raw: ForecastReport
    backtest: BacktestResult
    baseline: BacktestResult
    shuffled_auc: float | None
    score: ModelScore
    last_test: pl.DataFrame
    oos: pl.DataFrame  # every fold's test rows with `p_up` (calibrated) and `p_raw`
    notes: tuple[str, ...]
    feature_importance: tuple[tuple[str, float], ...]
    extra: dict[str, Any]  # sequence tower / fusion figures when available

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


def _fit_catboost(
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


def _default_params(config: ModelConfig) -> dict[str, Any]:
    return {
        "iterations": config.iterations,
        "learning_rate": config.learning_rate,
        "depth": config.depth,
        "l2_leaf_reg": config.l2_leaf_reg,
    }


def _majors_mask(symbols: pl.Series, majors: frozenset[str]) -> np.ndarray:
    return symbols.str.split("/").list.first().is_in(list(majors)).to_numpy()


def forecast_report(frame: pl.DataFrame, p: np.ndarray, label: str) -> ForecastReport:
    vol = frame["vol_regime"].to_numpy() if "vol_regime" in frame.columns else np.full(len(frame), np.nan)
    return evaluate_forecast(frame[label].to_numpy(), p, frame["ts"], vol)


def backtests(
    frame: pl.DataFrame,
    p: np.ndarray,
    *,
    majors: frozenset[str],
    timeframe: str,
    backtest: BacktestConfig,
    trading: TradingConfig,
) -> tuple[BacktestResult, BacktestResult]:
    """The model's fee-aware backtest and its random-entry baseline (same sizing and exits)."""
    return model_and_baseline(frame, p, majors=majors, timeframe=timeframe, config=backtest, trading=trading)


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
) -> tuple[ModelScore, ForecastReport, BacktestResult]:
    """Brier, ECE, accuracy and backtest Sharpe of any served model on a test period (champion or not)."""
    p = np.asarray(model.predict_proba(_matrix(last_test, feature_columns)))[:, 1]
    report = forecast_report(last_test, p, label)
    result = run_backtest(last_test, p, majors=majors, timeframe=timeframe, config=backtest, trading=trading)
    score = ModelScore(
        brier=report.overall.brier, ece=report.overall.ece, accuracy=report.overall.accuracy, sharpe=result.sharpe
    )
    return score, report, result


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
) -> RetrainResult:
    """Tune, fit, calibrate and evaluate the tabular tower walk-forward (SPEC 7-8).

    1. Windows: `plan_windows` over the dataset's bar times (train `train_months`, test and step
       `test_days`, embargo >= horizon), shrunk with a note when the history is shorter.
    2. Hyperparameters: Optuna (`tune_catboost`, expanding never-shuffled CV) on the rows before the
       first fold's test period only, so no test row ever informs them; `optuna_trials=0` keeps the
       configured defaults.
    3. Per fold: CatBoost on the training window minus its latest `calibration_share` (and an embargo),
       a calibrator (isotonic or Platt, lower held-back Brier) fitted on that held-back part, then the
       test report and the fee-aware backtest against the random baseline.
    4. A shuffled-label control (same params, labels permuted) on the last fold; its AUC should be 0.5.
    Raises ValueError when the history does not hold one fold.
    """
    started = time.perf_counter()
    label = f"direction_{config.horizon_bars}"
    bar = timeframe_delta(timeframe)
    embargo = config.embargo * bar
    times = dataset["ts"]
    first: datetime = times.min()  # type: ignore[assignment]
    last: datetime = times.max()  # type: ignore[assignment]
    plan = plan_windows(
        first,
        last + bar,
        folds=config.folds,
        train_span=timedelta(days=30 * config.train_months),
        test_span=timedelta(days=config.test_days),
        embargo=embargo,
        expanding=config.expanding,
        max_test_share=config.max_test_share,
        min_train_span=timedelta(days=config.min_train_days),
    )
    notes = list(plan.notes)

    params = _default_params(config)
    tuning: dict[str, Any] = {"trials": 0}
    if config.optuna_trials > 0:
        before = dataset.filter(pl.col("ts") < plan.windows[0].train_end)
        try:
            tuned = tune_catboost(
                _matrix(before, feature_columns),
                before[label].to_numpy(),
                before["ts"].dt.epoch("us").to_numpy(),
                n_trials=config.optuna_trials,
                n_folds=config.optuna_cv_folds,
                embargo=config.embargo,
                seed=config.seed,
                timeout_s=config.optuna_timeout_s,
                max_rows=config.tune_max_rows,
                thread_count=thread_count,
                rsm=config.rsm,
            )
            params = dict(tuned.best_params)
            tuning = {
                "trials": tuned.n_trials,
                "best_logloss": tuned.best_score,
                "seconds": tuned.seconds,
                "rows": tuned.n_rows,
                "table": tuned.trials,
            }
        except ValueError as exc:  # too little history before the first fold for the CV folds
            notes.append(f"Optuna skipped ({exc}); using the configured CatBoost defaults")
    for note in notes:
        log.info("retrain: %s", note)

    folds: list[FoldResult] = []
    oos_parts: list[pl.DataFrame] = []
    model: CalibratedClassifier | None = None
    last_fit: pl.DataFrame | None = None
    for window in plan.windows:
        fold_started = time.perf_counter()
        train = dataset.filter((pl.col("ts") >= window.train_start) & (pl.col("ts") < window.train_end))
        test = dataset.filter((pl.col("ts") >= window.test_start) & (pl.col("ts") < window.test_end))
        calibration_start = window.train_end - (window.train_end - window.train_start) * config.calibration_share
        fit = train.filter(pl.col("ts") < calibration_start - embargo).tail(config.max_train_rows)
        held = train.filter(pl.col("ts") >= calibration_start)
        if fit.is_empty() or held.is_empty() or test.is_empty():
            notes.append(f"{window.describe()} skipped: an empty fit, calibration or test part")
            continue
        cat = _fit_catboost(
            _matrix(fit, feature_columns), fit[label].to_numpy(), feature_columns, params, config, thread_count
        )
        held_raw = cat.predict_proba(_matrix(held, feature_columns))[:, 1]
        calibrator, briers = fit_calibrator(held_raw, held[label].to_numpy())
        model = CalibratedClassifier(cat, calibrator, feature_names=feature_columns)
        p_raw = cat.predict_proba(_matrix(test, feature_columns))[:, 1]
        p = calibrator.transform(p_raw)
        bt, base = backtests(test, p, majors=majors, timeframe=timeframe, backtest=backtest, trading=trading)
        folds.append(
            FoldResult(
                window=window,
                report=forecast_report(test, p, label),
                raw_report=forecast_report(test, p_raw, label),
                backtest=bt,
                baseline=base,
                calibration_method=calibrator.method,
                calibration_briers=briers,
                fit_rows=len(fit),
                calibration_rows=len(held),
                test_rows=len(test),
                seconds=time.perf_counter() - fold_started,
            )
        )
        oos_parts.append(test.with_columns(pl.Series("p_up", p), pl.Series("p_raw", p_raw)))
        last_fit = fit
        log.info("retrain %s: auc %.4f, ece %.4f, sharpe %.2f", window.describe(), folds[-1].report.overall.auc,
                 folds[-1].report.overall.ece, bt.sharpe)
    if model is None or last_fit is None:
        raise ValueError("no walk-forward fold could be trained: " + "; ".join(notes))

    oos = pl.concat(oos_parts)
    last_test = oos_parts[-1]
    p_oos = oos["p_up"].to_numpy()
    overall = forecast_report(oos, p_oos, label)
    overall_raw = forecast_report(oos, oos["p_raw"].to_numpy(), label)
    bt_all, base_all = backtests(oos, p_oos, majors=majors, timeframe=timeframe, backtest=backtest, trading=trading)

    extra: dict[str, Any] = {}
    if config.sequence_tower:
        extra = _sequence_fusion(
            dataset,
            folds[-1].window,
            last_test,
            model,
            feature_columns,
            config,
            label,
            embargo,
            majors=majors,
            timeframe=timeframe,
            backtest=backtest,
            trading=trading,
            notes=notes,
        )

    shuffled_auc = None
    if config.shuffled_control:
        rng = np.random.default_rng(config.seed)
        control = _fit_catboost(
            _matrix(last_fit, feature_columns),
            rng.permutation(last_fit[label].to_numpy()),
            feature_columns,
            params,
            config,
            thread_count,
        )
        p_control = control.predict_proba(_matrix(last_test, feature_columns))[:, 1]
        shuffled_auc = classification_metrics(last_test[label].to_numpy(), p_control).auc

    last_fold = folds[-1]
    score = ModelScore(
        brier=last_fold.report.overall.brier,
        ece=last_fold.report.overall.ece,
        accuracy=overall.overall.accuracy,
        sharpe=last_fold.backtest.sharpe,
    )
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
        overall_raw=overall_raw,
        backtest=bt_all,
        baseline=base_all,
        shuffled_auc=shuffled_auc,
        score=score,
        last_test=last_test,
        oos=oos,
        notes=tuple(notes),
        feature_importance=ranked,
        extra=extra | {"seconds": time.perf_counter() - started},
    )


def _sequence_fusion(
    dataset: pl.DataFrame,
    window: Window,
    last_test: pl.DataFrame,
    model: CalibratedClassifier,
    feature_columns: tuple[str, ...],
    config: ModelConfig,
    label: str,
    embargo: timedelta,
    *,
    majors: frozenset[str],
    timeframe: str,
    backtest: BacktestConfig,
    trading: TradingConfig,
    notes: list[str],
) -> dict[str, Any]:
    """Sequence tower + fusion on the last fold (SPEC 7), evaluated out of sample; logged, not served.

    The tower trains on rows before the fold's validation part (minus the embargo); the context readout,
    the regime boost and the fusion weights (majors vs alts) are fitted on the validation part (its
    latest `test_days`, to bound the cost), and the fused forecast is scored on the test rows with the
    same report and backtest as the tabular one. The serving tier cannot compute the 200-bar context per
    request yet, so the served model stays the calibrated tabular tower.
    """
    from pipelines.modeling.fusion import fit_context_readout, fit_fusion, fit_regime_boost, fuse
    from pipelines.modeling.sequence import CONTEXT_COLUMNS, SequenceTower, SequenceTowerConfig

    started = time.perf_counter()
    span = window.train_end - window.train_start
    calibration_start = window.train_end - span * config.calibration_share
    validation_start = max(calibration_start, window.train_end - timedelta(days=config.test_days))
    tower_cfg = SequenceTowerConfig(
        feature_columns=feature_columns,
        seed=config.seed,
        max_train_windows=config.sequence_max_windows,
        epochs=config.sequence_epochs,
    )
    history = timeframe_delta(timeframe) * tower_cfg.window
    try:
        tower = SequenceTower(tower_cfg).fit(
            dataset.filter(pl.col("ts") < calibration_start - embargo).filter(
                pl.col("ts") >= window.train_start
            ),
            calibration_start - embargo,
        )
        frame = dataset.filter(
            (pl.col("ts") >= validation_start - history) & (pl.col("ts") < window.test_end)
        )
        context = tower.context(frame, start=validation_start)
    except ValueError as exc:
        notes.append(f"sequence tower skipped: {exc}")
        return {}
    rows = frame.join(context, on=["symbol", "ts"], how="left")
    validation = rows.filter((pl.col("ts") >= validation_start) & (pl.col("ts") < window.train_end))
    test = rows.filter(pl.col("ts") >= window.test_start).sort("ts", "symbol")
    fit_rows = dataset.filter((pl.col("ts") >= window.train_start) & (pl.col("ts") < calibration_start - embargo))
    regime = fit_regime_boost(
        fit_rows["vol_regime"].to_numpy(), fit_rows["trend_regime"].to_numpy(), fit_rows[label].to_numpy()
    )
    ctx_cols = list(CONTEXT_COLUMNS)
    readout = fit_context_readout(validation.select(ctx_cols).to_numpy(), validation[label].to_numpy())

    def inputs(part: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        p_tab = model.predict_proba(_matrix(part, feature_columns))[:, 1]
        return (
            p_tab,
            readout.score(part.select(ctx_cols).to_numpy()),
            regime.value(part["vol_regime"].to_numpy(), part["trend_regime"].to_numpy()),
            _majors_mask(part["symbol"], majors),
        )

    v_tab, v_ctx, v_regime, v_major = inputs(validation)
    weights = fit_fusion(v_tab, v_ctx, v_regime, validation[label].to_numpy(), v_major)
    t_tab, t_ctx, t_regime, t_major = inputs(test)
    fused = fuse(weights, t_tab, t_ctx, t_regime, t_major)
    report = forecast_report(test, fused, label)
    result = run_backtest(test, fused, majors=majors, timeframe=timeframe, config=backtest, trading=trading)
    tabular = forecast_report(test, t_tab, label)
    out: dict[str, Any] = {
        "fused_auc": report.overall.auc,
        "fused_brier": report.overall.brier,
        "fused_ece": report.overall.ece,
        "fused_accuracy": report.overall.accuracy,
        "fused_sharpe": result.sharpe,
        "fused_trades": float(result.trades),
        "fused_vs_tabular_brier": report.overall.brier - tabular.overall.brier,
        "sequence_fit_seconds": tower.fit_seconds,
        "sequence_fusion_seconds": time.perf_counter() - started,
    }
    for group, w in weights.items():
        out |= {f"fusion_{group}_w_tabular": w.as_tuple()[0], f"fusion_{group}_w_context": w.as_tuple()[1],
                f"fusion_{group}_w_regime": w.as_tuple()[2]}
    out["fusion_weights"] = {group: w.to_dict() for group, w in weights.items()}
    del last_test
    return out
