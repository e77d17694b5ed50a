"""Walk-forward retrain on fresh features: drift check, then train a challenger, compare it with the
champion on the same out-of-sample period and promote it if it is better (SPEC 8).

Trigger it by hand from the Airflow UI ("Trigger DAG w/ config") to override, for that run only, the
label horizon (bars), the training window (months) or the number of Optuna trials; an empty value keeps
the configured default (`ALPHATIDE_MODEL__HORIZON_BARS`, `__TRAIN_MONTHS`, `__OPTUNA_TRIALS`).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from pipelines import nightly
from pipelines.airflow_wiring import DEFAULT_ARGS, FEATURES, MODEL, TAGS, run_stage


@dag(
    dag_id="alphatide_train",
    schedule=[FEATURES],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=TAGS,
    doc_md=__doc__,
    params={
        "horizon_bars": Param(
            None, type=["null", "integer"], minimum=1, maximum=288, description="Label horizon, bars (empty: settings)."
        ),
        "train_months": Param(
            None, type=["null", "integer"], minimum=1, maximum=60, description="Training months (empty: settings)."
        ),
        "optuna_trials": Param(
            None, type=["null", "integer"], minimum=0, maximum=1000, description="Optuna trials (empty: settings)."
        ),
    },
)
def alphatide_train() -> None:
    @task
    def drift_check() -> dict:
        return run_stage(nightly.run_drift_check)

    @task(outlets=[MODEL])
    def train() -> dict:
        params: dict[str, Any] = dict(get_current_context()["params"])
        return run_stage(
            lambda: nightly.run_training(
                horizon_bars=params.get("horizon_bars"),
                train_months=params.get("train_months"),
                optuna_trials=params.get("optuna_trials"),
            )
        )

    @task
    def train_window() -> dict:
        from pipelines.window.train import run_window_training

        return run_stage(run_window_training)

    drift_check() >> train() >> train_window()


alphatide_train()
