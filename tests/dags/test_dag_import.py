"""Every DAG imports cleanly, is tagged, retries, and the chain is linked by assets only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
CHAIN = ["alphatide_universe", "alphatide_backfill", "alphatide_validate", "alphatide_features"]


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {*CHAIN, "alphatide_train", "alphatide_materialize"}


def test_tags_and_retries(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        assert "alphatide" in dag.tags, dag_id
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id}"


def test_only_the_first_dag_is_time_scheduled_the_rest_follow_assets(dagbag) -> None:  # type: ignore[no-untyped-def]
    from pipelines.airflow_runner import chain_order

    order = chain_order(dagbag.dags)
    assert order[:4] == CHAIN and set(order[4:]) == {"alphatide_train", "alphatide_materialize"}
    assert dagbag.dags["alphatide_universe"].schedule == "@daily"
    for dag_id in order[1:]:
        assert isinstance(dagbag.dags[dag_id].schedule, list | tuple), dag_id


def test_dag_files_only_wire_tasks() -> None:
    for path in DAGS.glob("alphatide_*.py"):
        text = path.read_text()
        for forbidden in ("import polars", "import pandas", "duckdb", "SELECT ", "load_settings("):
            assert forbidden not in text, f"{path.name} contains {forbidden!r}"
