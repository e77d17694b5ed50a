"""Apply the Feast definitions and materialize the newest features online."""

from __future__ import annotations

from airflow.sdk import dag, task

from pipelines import nightly
from pipelines.airflow_wiring import DAG_DEFAULTS, FEATURES, ONLINE_FEATURES, run_stage


@dag(
    dag_id="alphatide_materialize",
    schedule=[FEATURES],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def alphatide_materialize() -> None:
    @task(outlets=[ONLINE_FEATURES])
    def materialize() -> dict:
        return run_stage(nightly.run_materialize)

    materialize()


alphatide_materialize()
