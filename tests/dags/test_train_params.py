"""The retrain DAG's trigger form shows the configured defaults; the chain's consumers start unpaused;
the Airflow UI listens on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


def _bag(path: Path):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    return bag


@pytest.fixture(scope="module", autouse=True)
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow")))


def test_the_trigger_form_shows_the_configured_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHATIDE_MODEL__HORIZON_BARS", "3")
    monkeypatch.setenv("ALPHATIDE_MODEL__OPTUNA_TRIALS", "9")

    params = _bag(DAGS / "alphatide_train.py").dags["alphatide_train"].params

    assert params["horizon_bars"] == 3 and params["optuna_trials"] == 9
    assert params["train_months"] == 6  # the default of ALPHATIDE_MODEL__TRAIN_MONTHS
    assert "ALPHATIDE_MODEL__HORIZON_BARS" in params.get_param("horizon_bars").description


def test_drift_check_runs_before_training() -> None:
    train_dag = _bag(DAGS / "alphatide_train.py").dags["alphatide_train"]
    assert train_dag.get_task("train").upstream_task_ids == {"drift_check"}


def test_asset_triggered_dags_are_created_unpaused() -> None:
    dags = _bag(DAGS).dags

    assert dags["alphatide_universe"].is_paused_upon_creation is None  # the daily clock: Airflow's setting
    for dag_id in ("alphatide_backfill", "alphatide_validate", "alphatide_features", "alphatide_train",
                   "alphatide_materialize"):
        assert dags[dag_id].is_paused_upon_creation is False, dag_id


def test_the_ui_binds_localhost_unless_configured(tmp_path: Path) -> None:
    from pipelines.airflow_runner import airflow_environment
    from pipelines.config import load_settings

    settings = load_settings({}, home=tmp_path)

    assert airflow_environment(settings, base={})["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert airflow_environment(settings, base={"AIRFLOW__API__HOST": "0.0.0.0"})["AIRFLOW__API__HOST"] == "0.0.0.0"
    assert airflow_environment(settings, base={})["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "INFO"  # task logs keep INFO
