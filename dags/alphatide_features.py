"""Build features for the validated batch (polars) into the lake."""

from __future__ import annotations

from airflow.sdk import dag, task

from pipelines import nightly
from pipelines.airflow_wiring import DAG_DEFAULTS, FEATURES, VALIDATED, run_stage


@dag(
    dag_id="alphatide_features",
    schedule=[VALIDATED],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def alphatide_features() -> None:
    @task(outlets=[FEATURES])
    def features() -> dict:
        return run_stage(nightly.run_features)

    features()


alphatide_features()
