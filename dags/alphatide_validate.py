"""Gate the backfilled batch with Great Expectations; a failing batch is quarantined."""

from __future__ import annotations

from airflow.sdk import dag, task

from pipelines import nightly
from pipelines.airflow_wiring import CANDLES, DAG_DEFAULTS, VALIDATED, run_stage


@dag(
    dag_id="alphatide_validate",
    schedule=[CANDLES],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def alphatide_validate() -> None:
    @task(outlets=[VALIDATED])
    def validate() -> dict:
        return run_stage(nightly.run_validation)

    validate()


alphatide_validate()
