"""Log a backtest to MLflow (`settings.mlflow_tracking_uri`): params, numeric results, the report files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.config import Settings

EXPERIMENT = "alphatide-backtest"


def log_run(settings: Settings, summary: dict[str, Any], out: Path) -> str:
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"backtest-{summary['strategy_id']}") as run:
        mlflow.log_params({"strategy": summary["strategy"], **{f"sim.{k}": v for k, v in summary["sim"].items()}})
        mlflow.log_metrics({f"total.{k}": float(v) for k, v in summary["total"].items()})
        for venue, s in summary["markets"].items():
            mlflow.log_metrics({f"{venue}.{k}": float(v) for k, v in s.items() if isinstance(v, int | float)})
        mlflow.log_artifacts(str(out), artifact_path="report")
        return str(run.info.run_id)
