"""The features DAG also runs the nightly market-making calibration, as one more task."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "alphatide_features.py"


def test_features_dag_has_the_mm_params_task(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow")))
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAG_FILE)).dags["alphatide_features"]
    assert {task.task_id for task in dag.tasks} == {"features", "mm_params"}
    assert dag.get_task("mm_params").retries >= 2
