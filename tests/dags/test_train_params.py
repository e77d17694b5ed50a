"""The retrain DAG can be triggered from the UI with parameters that default to the settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def train_dag(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow")))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "alphatide_train.py"))
    assert bag.import_errors == {}
    return bag.dags["alphatide_train"]


def test_trigger_parameters_exist_and_default_to_the_settings(train_dag) -> None:  # type: ignore[no-untyped-def]
    params = train_dag.params
    assert {"horizon_bars", "train_months", "optuna_trials"} <= set(params.keys())
    assert all(params[name] is None for name in ("horizon_bars", "train_months", "optuna_trials"))


def test_drift_check_runs_before_training(train_dag) -> None:  # type: ignore[no-untyped-def]
    assert train_dag.get_task("train").upstream_task_ids == {"drift_check"}
