"""The retrain stage behind `nightly.run_training`: walk-forward retrain, champion comparison on the same
out-of-sample period, the promotion decision, and everything logged to MLflow (one parent run, a nested
run per fold, pictures, lineage tags, the decision's reasons).

What is served: the last fold's fused two-tower model (`FusedModel`) when, on the last fold's test rows,
its Brier is no worse than the calibrated tabular tower's and its ECE within the gate's; otherwise the
calibrated CatBoost model (`CalibratedClassifier`). Either way exactly the model whose figures decide the
promotion. `ModelRef.feature_columns` are its input columns; the version's tags say `served_tower` and
`tradeable` (passed the full gate; a bootstrap champion serves signals but is not traded).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from pipelines.config import ModelConfig, Settings
from pipelines.drift import DriftReport, feature_drift
from pipelines.errors import OperatorError
from pipelines.promotion import ModelScore, PromotionDecision, promote_if_better
from pipelines.registry import CHAMPION, FoldRun, MlflowRegistry, ModelRef
from pipelines.research_config import ResearchConfig, research_settings
from pipelines.training import (
    RetrainResult,
    build_training_set,
    forecast_report,
    model_score,
    retrain_walk_forward,
    score_for_promotion,
)

log = logging.getLogger(__name__)


def with_model_overrides(settings: Settings, **overrides: Any) -> Settings:
    """Settings with some `model` fields replaced (None = keep), validated like the environment is.

    Used for the parameters of a manually triggered retrain (Airflow UI: horizon, training window,
    Optuna trials). Raises OperatorError naming a bad value.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    if not given:
        return settings
    try:
        model = ModelConfig.model_validate(settings.model.model_dump() | given)
    except ValueError as exc:
        raise OperatorError(f"invalid retrain parameters {given}: {exc}") from exc
    return settings.model_copy(update={"model": model})


def _majors(settings: Settings) -> frozenset[str]:
    return frozenset(settings.universe.majors)


def _champion_score(
    registry: MlflowRegistry, result: RetrainResult, settings: Settings, timeframe: str
) -> tuple[ModelRef | None, ModelScore | None, dict[str, float]]:
    champion = registry.champion()
    if champion is None:
        return None, None, {}
    if not set(champion.feature_columns) <= set(result.last_test.columns):
        log.warning("champion %s needs features this batch lacks: it cannot be scored", champion.version)
        return champion, None, {}
    model = registry.load_native(champion)
    score, report, backtest = score_for_promotion(
        model,
        result.last_test,
        champion.feature_columns,
        f"direction_{settings.model.horizon_bars}",
        majors=_majors(settings),
        timeframe=timeframe,
        backtest=settings.backtest,
        trading=settings.engine.trading,
        history=result.history,
        long_only=research_settings(settings).baseline.long_only,
    )
    metrics = {
        "champion_brier": score.brier,
        "champion_ece": score.ece,
        "champion_accuracy": score.accuracy,
        "champion_sharpe": score.sharpe,
        "champion_auc": report.overall.auc,
        "champion_trades": float(backtest.trades),
        "champion_return": score.total_return,
    }
    return champion, score, metrics


def _figures(result: RetrainResult, label: str) -> dict[str, Any]:
    from pipelines import plots

    y = result.oos[label].to_numpy()
    return {
        "plots/reliability.png": plots.reliability_diagram(
            y, {"raw": result.oos["p_raw"].to_numpy(), "calibrated": result.oos["p_up"].to_numpy()}
        ),
        "plots/equity_vs_baseline.png": plots.equity_curves(
            result.backtest.equity_times,
            {
                f"model ({result.backtest.trades} trades)": result.backtest.equity,
                f"random baseline, seed 1 of {len(result.baseline.sharpes)} "
                f"({result.baseline.first.trades} trades)": result.baseline.first.equity,
            },
        ),
        "plots/feature_importance.png": plots.feature_importance(result.feature_importance),
    }


def _report_json(
    result: RetrainResult, decision: PromotionDecision, drift: dict[str, Any] | None, served: str
) -> str:
    return json.dumps(
        {
            "params": result.params,
            "tuning": {k: v for k, v in result.tuning.items() if k != "table"},
            "notes": list(result.notes),
            "folds": [
                {
                    "window": {k: str(v) for k, v in asdict(f.window).items()},
                    "calibration": f.calibration_method,
                    "metrics": f.metrics(),
                    "exits": f.backtest.exits,
                }
                for f in result.folds
            ],
            "overall": result.metrics(),
            "sessions": {k: asdict(v) for k, v in result.overall.by_session.items()},
            "vol_regimes": {k: asdict(v) for k, v in result.overall.by_vol_regime.items()},
            "fusion_weights": result.extra.get("fusion_weights"),
            "decision": {"promote": decision.promote, "reasons": list(decision.reasons)},
            "drift": drift,
            "served_model": served,
        },
        indent=2,
        default=str,
    )


BENCH_KEYS = ("label_tie_share", "fit_days_per_fold", "fit_rows_per_fold", "baseline_", "beats_baseline_",
              "pairs_traded", "bt_taker_", "bt_maker_")


def round_trip_cost(settings: Settings, research: ResearchConfig) -> float:
    """The cost-aware label's threshold: configured, or the backtest's round trip (fees, slippage, spread)."""
    if research.label.round_trip_cost is not None:
        return research.label.round_trip_cost
    bt = settings.backtest
    return 2 * bt.fee_per_side + 2 * bt.slippage_per_side + bt.spread


@dataclass(frozen=True)
class ServedCandidate:
    """The model registered for this retrain, its promotion score and why that tower."""

    model: Any
    score: ModelScore
    tower: str  # "tabular" or "fused"
    description: str
    auc: float
    ece: float

    def metrics(self) -> dict[str, float]:
        return {"served_oos_auc": self.auc, "served_oos_ece": self.ece, "served_fused": float(self.tower == "fused")}


def served_candidate(
    result: RetrainResult, settings: Settings, research: ResearchConfig, timeframe: str
) -> ServedCandidate:
    """The fused model when it wins on the last fold's test rows (Brier <= the tabular tower's, ECE within
    the gate's `max_ece`), else the calibrated tabular tower. Both are scored on the same rows."""
    last = result.folds[-1]
    tabular = ServedCandidate(
        result.model, result.score, "tabular",
        f"calibrated tabular (CalibratedClassifier: CatBoost + {last.calibration_method})",
        last.report.overall.auc, last.report.overall.ece,
    )
    if not research.tower.serve_fused or result.fused is None or result.fused_p is None:
        return tabular
    label = f"direction_{settings.model.horizon_bars}"
    report = forecast_report(result.last_test, result.fused_p, label)
    if report.overall.brier > last.report.overall.brier or report.overall.ece > settings.promotion.max_ece:
        return tabular
    from pipelines.backtest import run_backtest

    backtest = run_backtest(
        result.last_test, result.fused_p, majors=_majors(settings), timeframe=timeframe,
        config=settings.backtest, trading=settings.engine.trading, long_only=research.baseline.long_only,
    )
    score = model_score(report, backtest, accuracy=result.score.accuracy)
    return ServedCandidate(
        result.fused, score, "fused",
        f"fused two-tower (tabular + LSTM context + regime boost; brier {report.overall.brier:.5f} <= "
        f"tabular {last.report.overall.brier:.5f})",
        report.overall.auc, report.overall.ece,
    )


def retrain_and_promote(
    settings: Settings,
    *,
    candles: pl.DataFrame,
    features: pl.DataFrame,
    feature_columns: tuple[str, ...],
    timeframe: str,
    lineage: dict[str, str],
    validation_passed: bool = True,
    drift: dict[str, Any] | None = None,
    registry: MlflowRegistry | None = None,
    thread_count: int = -1,
) -> dict[str, Any]:
    """Retrain walk-forward, compare with the champion on the last fold's test period, log, promote.

    `lineage` holds `feature_service`, `universe_date`, `data_snapshot` (and anything else to tag).
    Returns a JSON-able summary (the task's XCom).
    """
    model_cfg = settings.model
    research = research_settings(settings)
    dataset = build_training_set(
        candles, features, feature_columns, model_cfg.horizon_bars,
        label_mode=research.label.mode, round_trip_cost=round_trip_cost(settings, research),
    )
    try:
        result = retrain_walk_forward(
            dataset,
            feature_columns,
            model_cfg,
            timeframe,
            majors=_majors(settings),
            backtest=settings.backtest,
            trading=settings.engine.trading,
            thread_count=thread_count,
            baseline=research.baseline,
        )
    except ValueError as exc:
        raise OperatorError(f"walk-forward retrain impossible on this batch: {exc}") from exc

    registry = registry or MlflowRegistry(
        settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", model_cfg.name
    )
    champion_ref, champion_score, champion_metrics = _champion_score(registry, result, settings, timeframe)
    served = served_candidate(result, settings, research, timeframe)
    decision = promote_if_better(
        served.score, champion_score, validation_passed=validation_passed, config=settings.promotion,
        min_trades=research.gate.min_trades_for_sharpe,
    )
    metrics = result.metrics() | champion_metrics | served.metrics()
    if drift is not None:
        metrics["drift_features"] = float(len(drift.get("drifted", [])))
    last = result.folds[-1].window
    tags = {
        **lineage,
        "timeframe": timeframe,
        "test_period": f"{last.test_start.isoformat()}/{last.test_end.isoformat()}",
        "champion_before": champion_ref.version if champion_ref else "none",
        "served_model": served.description,
        "served_tower": served.tower,
        "backtest_trades": str(served.score.trades),
        "label_mode": research.label.mode,
        "walk_forward_notes": " | ".join(result.notes)[:5000] or "none",
        "leakage_flag": str(result.score.accuracy > settings.promotion.leakage_accuracy).lower(),
    }
    folds = [
        FoldRun(
            name=f"fold-{f.window.index}",
            params={
                "train_start": f.window.train_start.isoformat(),
                "train_end": f.window.train_end.isoformat(),
                "test_start": f.window.test_start.isoformat(),
                "test_end": f.window.test_end.isoformat(),
                "calibration": f.calibration_method,
            },
            metrics=f.metrics(),
        )
        for f in result.folds
    ]
    figures = _figures(result, f"direction_{model_cfg.horizon_bars}")
    texts = {"report/retrain.json": _report_json(result, decision, drift, served.description)}
    if "table" in result.tuning:
        texts["report/optuna_trials.csv"] = result.tuning["table"].write_csv()
    if drift is not None:
        texts["report/drift.json"] = json.dumps(drift, indent=2)
    params = _run_params(model_cfg, result, timeframe)
    try:
        run_id, ref = registry.log_candidate(
            served.model,
            feature_columns=feature_columns,
            horizon_bars=model_cfg.horizon_bars,
            params=params,
            metrics=metrics,
            tags=tags,
            input_example=result.last_test.select(feature_columns).head(5).to_pandas(),
            folds=folds,
            figures=figures,
            texts=texts,
            run_name=run_name(lineage.get("universe_date", ""), timeframe, model_cfg.horizon_bars),
        )
    finally:
        from pipelines import plots

        plots.close(figures)
    if decision.promote:
        registry.set_alias(ref.version, CHAMPION)
    registry.record_decision(run_id, ref.version, decision.promote, decision.summary)
    registry.record_tradeable(ref.version, decision.tradeable)
    record = decision_record(ref.version, decision, result.score, champion_ref, champion_score)
    log_decision(record)
    current = registry.champion()
    return {
        "run_id": run_id,
        "experiment_id": registry.experiment_id,
        "version": ref.version,
        "promoted": decision.promote,
        "tradeable": decision.tradeable,
        "served_tower": served.tower,
        "reasons": list(decision.reasons),
        "decision": record,
        "champion_before": champion_ref.version if champion_ref else None,
        "champion": current.version if current else None,
        "folds": len(result.folds),
        "notes": list(result.notes),
        "oos_auc": result.overall.overall.auc,
        "oos_brier": result.overall.overall.brier,
        "oos_log_loss": result.overall.overall.log_loss,
        "oos_accuracy": result.overall.overall.accuracy,
        "oos_ece": result.overall.overall.ece,
        "oos_raw_ece": result.overall_raw.overall.ece,
        "shuffled_auc": result.shuffled_auc,
        "sharpe": result.backtest.sharpe,
        "baseline_sharpe": result.baseline.sharpe_mean,
        "promotion_sharpe": served.score.sharpe,
        "promotion_trades": served.score.trades,
        "promotion_brier": served.score.brier,
        "promotion_ece": served.score.ece,
        "promotion_return": served.score.total_return,
        "trades": result.backtest.trades,
        **{k: v for k, v in result.metrics().items() if k.startswith(BENCH_KEYS)},
        **served.metrics(),
        "params": result.params,
        "tuning_seconds": float(result.tuning.get("seconds", 0.0)),
        "retrain_seconds": float(result.extra.get("seconds", 0.0)),
        **{k: float(v) for k, v in result.extra.items() if k.startswith(("fused_", "sequence_"))},
        **champion_metrics,
    }


def run_name(universe_date: str, timeframe: str, horizon_bars: int) -> str:
    """What the run is, as MLflow lists it: `retrain 2024-07-01 5m h1`."""
    return f"retrain {universe_date or 'adhoc'} {timeframe} h{horizon_bars}"


def _run_params(model_cfg: ModelConfig, result: RetrainResult, timeframe: str) -> dict[str, Any]:
    """The configuration, with the CatBoost parameters the model was fit with (Optuna's when tuned) under
    their own names; the configured defaults stay visible as `default_<name>`."""
    trials = int(result.tuning.get("trials", 0))
    defaults = {f"default_{k}": getattr(model_cfg, k) for k in result.params if hasattr(model_cfg, k)}
    return model_cfg.model_dump() | defaults | dict(result.params) | {
        "timeframe": timeframe,
        "optuna_trials_run": trials,
        "params_source": f"optuna ({trials} trials)" if trials else "configured defaults",
    }


def decision_record(
    version: str,
    decision: PromotionDecision,
    challenger: ModelScore,
    champion_ref: ModelRef | None,
    champion: ModelScore | None,
) -> dict[str, Any]:
    """The promotion decision as data: verdict, every reason, and the figures compared (the task log,
    the `alphatide.model` asset event, the chain's summary)."""
    return {
        "version": version,
        "promoted": decision.promote,
        "tradeable": decision.tradeable,
        "reasons": list(decision.reasons),
        "challenger": asdict(challenger),
        "champion_version": champion_ref.version if champion_ref else None,
        "champion": asdict(champion) if champion is not None else None,
    }


def log_decision(record: dict[str, Any]) -> None:
    verdict = "PROMOTED to champion" if record["promoted"] else "NOT promoted (champion kept)"
    log.info("promotion decision: model version %s %s", record["version"], verdict)
    for reason in record["reasons"]:
        log.info("  reason: %s", reason)
    compared = ", ".join(f"{k} {v:.4f}" for k, v in record["challenger"].items() if isinstance(v, int | float))
    log.info("  challenger v%s: %s", record["version"], compared)
    if record["champion"] is not None:
        compared = ", ".join(f"{k} {v:.4f}" for k, v in record["champion"].items() if isinstance(v, int | float))
        log.info("  champion v%s: %s", record["champion_version"], compared)
    else:
        log.info("  champion: none in service")


def drift_check(features: pl.DataFrame, feature_columns: tuple[str, ...], settings: Settings) -> DriftReport:
    """KS drift of the last `recent_days` of features against everything before them in the batch."""
    newest: datetime | None = features["ts"].max()  # type: ignore[assignment]
    if newest is None:
        raise OperatorError("no feature rows to check for drift")
    cut = newest - timedelta(days=settings.drift.recent_days)
    return feature_drift(
        features.filter(pl.col("ts") <= cut),
        features.filter(pl.col("ts") > cut),
        feature_columns,
        p_value=settings.drift.p_value,
        max_rows=settings.drift.max_rows,
        seed=settings.model.seed,
    )
