"""`train_window_model`: the window model's nightly step (dataset, walk-forward, gate, MLflow registry).

The window model is its own registered model (`WindowModelConfig.name`, default `alphatide-window`):
each run logs a parent run with a nested run per fold, registers the last fold's calibrated model with
alias `challenger` and version tags `timeframe` (the bars it was trained on: serving refuses a champion
of other bars) and `tradeable` (`GateDecision.tradeable`), scores the `champion` (if any) on the same
last test window and moves `champion` when `window_gate` says so. `run_window_training` is what the
Airflow task calls: it reads the validated 5m batch of the nightly chain from the lake.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from pipelines.config import PromotionConfig, Settings, load_settings
from pipelines.errors import OperatorError
from pipelines.features.spec import DEFAULT_PARAMS
from pipelines.lake import Lake
from pipelines.metrics import ClassificationMetrics, classification_metrics
from pipelines.registry import CHAMPION, FoldRun, MlflowRegistry, ModelRef
from pipelines.window.dataset import LABEL, window_dataset
from pipelines.window.model import GateDecision, WindowEvaluation, WindowModelConfig, evaluate_walk_forward, window_gate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowTrainResult:
    evaluation: WindowEvaluation
    decision: GateDecision
    version: ModelRef | None  # the registered challenger (None when no registry was given)
    champion_metrics: ClassificationMetrics | None

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.version.name if self.version else None,
            "version": self.version.version if self.version else None,
            "promoted": self.decision.promote,
            "reason": self.decision.summary,
            **self.evaluation.metrics(),
        }


def _champion_metrics(registry: MlflowRegistry, evaluation: WindowEvaluation) -> ClassificationMetrics | None:
    champion = registry.champion()
    if champion is None:
        return None
    if not set(champion.feature_columns) <= set(evaluation.last_test.columns):
        log.warning("window champion %s needs columns this dataset lacks", champion.version)
        return None
    model = registry.load_native(champion)
    x = evaluation.last_test.select(champion.feature_columns).to_numpy().astype(np.float64)
    return classification_metrics(evaluation.last_test[LABEL].to_numpy(), model.predict_proba(x)[:, 1])


def _register(
    registry: MlflowRegistry, evaluation: WindowEvaluation, cfg: WindowModelConfig, tags: dict[str, str]
) -> tuple[str, ModelRef]:
    folds = [
        FoldRun(
            name=f"fold_{f.window.index}",
            params={"train_rows": f.train_rows, "test_rows": f.test_rows, "calibration": f.calibration},
            metrics={
                "brier": f.metrics.brier,
                "ece": f.metrics.ece,
                "auc": f.metrics.auc,
                "accuracy": f.metrics.accuracy,
            },
            tags={"test_window": f"{f.window.test_start:%Y-%m-%d %H:%M} to {f.window.test_end:%Y-%m-%d %H:%M}"},
        )
        for f in evaluation.folds
    ]
    report = {"notes": list(evaluation.notes), "metrics": evaluation.metrics(), "config": cfg.model_dump()}
    return registry.log_candidate(
        evaluation.model,
        feature_columns=evaluation.feature_columns,
        horizon_bars=1,
        params={k: v for k, v in cfg.model_dump().items() if k != "name"},
        metrics=evaluation.metrics(),
        tags={"model_kind": "window", **tags},
        input_example=evaluation.last_test.select(evaluation.feature_columns).head(5).to_numpy().astype(np.float64),
        folds=folds,
        texts={"report/window_model.json": json.dumps(report, indent=2, default=str)},
        # on the version too: serving refuses a champion trained on other bars than the stream's
        version_tags={"timeframe": tags["timeframe"]} if "timeframe" in tags else None,
    )


def train_window_model(
    candles: pl.DataFrame,
    timeframe: str,
    *,
    cfg: WindowModelConfig | None = None,
    promotion: PromotionConfig | None = None,
    registry: MlflowRegistry | None = None,
    market_prices: pl.DataFrame | None = None,
    tags: dict[str, str] | None = None,
) -> WindowTrainResult:
    """Train, evaluate and (with a registry) register and gate the window model on `cfg.symbol`'s bars."""
    cfg = cfg or WindowModelConfig()
    promotion = promotion or PromotionConfig()
    if cfg.window_s != DEFAULT_PARAMS.window_market_s:
        raise OperatorError(f"window_s {cfg.window_s} differs from the features' window_market_s")
    bars = candles.filter(pl.col("symbol") == cfg.symbol)
    if bars.is_empty():
        raise OperatorError(f"no {cfg.symbol} candles to train the window model on")
    dataset = window_dataset(bars, timeframe, market_prices=market_prices)
    evaluation = evaluate_walk_forward(dataset, cfg, promotion)
    if registry is None:
        last = classification_metrics(evaluation.last_test[LABEL].to_numpy(), _last_p(evaluation))
        decision = window_gate(last, None, promotion, open_accuracy=evaluation.open_accuracy)
        return WindowTrainResult(evaluation, decision, None, None)
    champion = _champion_metrics(registry, evaluation)
    last = classification_metrics(evaluation.last_test[LABEL].to_numpy(), _last_p(evaluation))
    decision = window_gate(last, champion, promotion, open_accuracy=evaluation.open_accuracy)
    run_id, version = _register(registry, evaluation, cfg, {"timeframe": timeframe, **(tags or {})})
    registry.record_tradeable(version.version, decision.promote and decision.tradeable)
    if decision.promote:
        registry.set_alias(version.version, CHAMPION)
    registry.record_decision(run_id, version.version, decision.promote, decision.summary)
    log.info("window model %s v%s: %s", version.name, version.version, decision.summary)
    return WindowTrainResult(evaluation, decision, version, champion)


def _last_p(evaluation: WindowEvaluation) -> np.ndarray:
    x = evaluation.last_test.select(evaluation.feature_columns).to_numpy().astype(np.float64)
    return np.asarray(evaluation.model.predict_proba(x)[:, 1])


def run_window_training(settings: Settings | None = None, cfg: WindowModelConfig | None = None) -> dict[str, Any]:
    """The Airflow task: the window model on the nightly chain's validated batch (its BTC/USDT bars)."""
    settings = settings or load_settings()
    cfg = cfg or WindowModelConfig()
    lake = Lake(settings.lake_dir)
    batch = lake.read_state("validated")
    if batch is None:
        raise OperatorError(f"no 'validated' manifest in {lake.root / '_state'}: run the validation stage first")
    if cfg.symbol not in batch["symbols"]:
        return {"skipped": f"{cfg.symbol} is not in the validated batch"}
    candles = lake.read_candles(
        batch["venue"],
        batch["timeframe"],
        [cfg.symbol],
        datetime.fromisoformat(batch["start"]),
        datetime.fromisoformat(batch["end"]),
    )
    registry = MlflowRegistry(
        settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", cfg.name, experiment="alphatide-window"
    )
    result = train_window_model(
        candles,
        batch["timeframe"],
        cfg=cfg,
        promotion=settings.promotion,
        registry=registry,
        tags={"data_snapshot": str(batch.get("batch_id")), "source": str(batch.get("source"))},
    )
    summary = result.summary()
    lake.write_state("window_training", summary)
    return summary
