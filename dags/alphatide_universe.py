"""Pick the tradable universe (point in time); it is published when the whole chain has succeeded."""

from __future__ import annotations

from airflow.sdk import dag, task

from pipelines import nightly
from pipelines.airflow_wiring import DAG_DEFAULTS, UNIVERSE, nightly_schedule, run_stage


@dag(
    dag_id="alphatide_universe",
    schedule=nightly_schedule(),  # ALPHATIDE_NIGHTLY_SCHEDULE, @daily by default
    doc_md=__doc__,
    # The daily clock follows Airflow's paused-at-creation setting: unpause it for the schedule, or
    # trigger it (the rest of the chain follows through assets).
    **{**DAG_DEFAULTS, "is_paused_upon_creation": None},
)
def alphatide_universe() -> None:
    @task(outlets=[UNIVERSE])
    def universe() -> dict:
        return run_stage(nightly.run_universe)

    universe()


alphatide_universe()
