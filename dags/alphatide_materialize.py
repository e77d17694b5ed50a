"""After a successful retrain: apply the Feast definitions, materialize the newest features online and
publish the day's universe (the last step of the chain: a chain that failed earlier publishes nothing)."""

from __future__ import annotations

from airflow.sdk import dag, task

from pipelines import nightly
from pipelines.airflow_wiring import DAG_DEFAULTS, ONLINE_FEATURES, TRAINED, run_stage


@dag(
    dag_id="alphatide_materialize",
    schedule=[TRAINED],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def alphatide_materialize() -> None:
    @task(outlets=[ONLINE_FEATURES])
    def materialize() -> dict:
        return run_stage(nightly.run_materialize)

    materialize()


alphatide_materialize()
