"""Backfill candles of the universe into the Parquet lake (incremental, idempotent)."""

from __future__ import annotations

from airflow.sdk import dag, task

from pipelines import nightly
from pipelines.airflow_wiring import CANDLES, DAG_DEFAULTS, UNIVERSE, run_stage


@dag(
    dag_id="alphatide_backfill",
    schedule=[UNIVERSE],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def alphatide_backfill() -> None:
    @task(outlets=[CANDLES])
    def backfill() -> dict:
        return run_stage(nightly.run_backfill)

    backfill()


alphatide_backfill()
