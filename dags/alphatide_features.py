"""Build features for the validated batch (polars) into the lake."""

from __future__ import annotations

from airflow.sdk import dag, task

from pipelines import nightly
from pipelines.airflow_wiring import DAG_DEFAULTS, FEATURES, VALIDATED, run_stage
from pipelines.trading.market_making import calibration as mm_calibration


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

    @task
    def mm_params() -> dict:
        # Avellaneda-Stoikov A, k, sigma per symbol from the lake's trades and books (SPEC 12).
        return run_stage(mm_calibration.run_mm_calibration)

    features()
    mm_params()


alphatide_features()
