"""Pick the tradable universe (point in time) and publish it."""

from __future__ import annotations

from airflow.sdk import dag, task

from pipelines import nightly
from pipelines.airflow_wiring import DAG_DEFAULTS, UNIVERSE, run_stage


@dag(
    dag_id="alphatide_universe",
    schedule="@daily",
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def alphatide_universe() -> None:
    @task(outlets=[UNIVERSE])
    def universe() -> dict:
        return run_stage(nightly.run_universe)

    universe()


alphatide_universe()
