"""The cluster's connection settings: defaults for one machine, typos and clashes refused, the URLs built
from them, and the nightly clock switched off in the cluster."""

from __future__ import annotations

import pytest

from pipelines.airflow_wiring import CHAIN_DAGS, nightly_schedule
from pipelines.cluster import config as cluster_config
from pipelines.cluster.config import load_cluster_config
from pipelines.config import load_settings
from pipelines.errors import ConfigError


def test_defaults_are_this_machines_services() -> None:
    cfg = load_cluster_config(environ={})

    assert cfg.pg_url("alphatide_airflow") == "postgresql+psycopg://postgres@127.0.0.1:5432/alphatide_airflow"
    assert cfg.redis_url(cfg.broker_db) == "redis://127.0.0.1:6379/0"
    assert cfg.serving_urls() == ["http://127.0.0.1:8000", "http://127.0.0.1:8001"]
    assert cluster_config.CHAIN_DAGS == CHAIN_DAGS


def test_lists_come_comma_separated_and_passwords_are_quoted() -> None:
    cfg = load_cluster_config(environ={
        "ALPHATIDE_CLUSTER__SERVING_PORTS": "9001, 9002,9003", "ALPHATIDE_CLUSTER__PG_PASSWORD": "p@ss/word",
        "ALPHATIDE_CLUSTER__COMPONENTS": "workers",
    })

    assert cfg.serving_ports == (9001, 9002, 9003) and cfg.components == ("workers",)
    assert cfg.pg_url("db").startswith("postgresql+psycopg://postgres:p%40ss%2Fword@")


@pytest.mark.parametrize(("env", "message"), [
    ({"ALPHATIDE_CLUSTER__PG_HOTS": "x"}, "unknown cluster variable(s): ALPHATIDE_CLUSTER__PG_HOTS"),
    ({"ALPHATIDE_CLUSTER__ONLINE_DB": "0"}, "broker_db and online_db must differ"),
    ({"ALPHATIDE_CLUSTER__MLFLOW_PORT": "8080"}, "must all differ"),
    ({"ALPHATIDE_CLUSTER__COMPONENTS": "mlflow,spark"}, "ALPHATIDE_CLUSTER__COMPONENTS__1"),
])
def test_typos_and_clashes_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_cluster_config(environ=env)

    assert message in str(refused.value)


def test_the_cluster_section_is_known_to_the_settings_and_the_clock_can_be_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALPHATIDE_CLUSTER__PG_HOST", "db.internal")
    monkeypatch.setenv("ALPHATIDE_NIGHTLY_SCHEDULE", "none")

    assert load_settings().nightly_schedule == "none"
    assert nightly_schedule() is None
    with pytest.raises(ConfigError):
        load_settings(environ={"ALPHATIDE_NIGHTLY_SCHEDULE": "every night"})
