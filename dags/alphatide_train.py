"""Walk-forward retrain on fresh features: drift check, then train a challenger, compare it with the
champion on the same out-of-sample period and promote it if it is better (SPEC 8).

Trigger it by hand from the Airflow UI ("Trigger DAG w/ config") to change, for that run only, the label
horizon (bars), the training window (months) or the number of Optuna trials; the form shows the
configured values (`ALPHATIDE_MODEL__HORIZON_BARS`, `__TRAIN_MONTHS`, `__OPTUNA_TRIALS`).
The decision (promoted or not, each reason, the metrics compared) is in the train task's log; the
`alphatide.model` asset gets an event, with the decision as its extras, only when the champion changes.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from pipelines import nightly
from pipelines.airflow_wiring import (
    DAG_DEFAULTS,
    FEATURES,
    MODEL,
    MODEL_CHANGES,
    TRAINED,
    publish_model_events,
    run_stage,
    train_params,
)


@dag(
    dag_id="alphatide_train",
    schedule=[FEATURES],
    doc_md=__doc__,
    params=train_params(),
    **DAG_DEFAULTS,
)
def alphatide_train() -> None:
    @task
    def drift_check() -> dict:
        return run_stage(nightly.run_drift_check)

    # Reads the champion (it is scored on the same period); `alphatide.model` gets an event only on a change.
    @task(inlets=[MODEL], outlets=[TRAINED, MODEL_CHANGES])
    def train() -> dict:
        context = get_current_context()
        params = dict(context["params"])
        summary = run_stage(
            lambda: nightly.run_training(
                horizon_bars=params.get("horizon_bars"),
                train_months=params.get("train_months"),
                optuna_trials=params.get("optuna_trials"),
            )
        )
        publish_model_events(context["outlet_events"], summary)
        return summary

    @task
    def train_window() -> dict:
        from pipelines.window.train import run_window_training

        return run_stage(run_window_training)

    drift_check() >> train() >> train_window()


alphatide_train()
