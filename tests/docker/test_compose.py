"""docker/compose.yaml describes the layout `make cluster` starts, and every variable it sets is one the code
reads: alphatide's through the real settings loader, Airflow's through Airflow's (and the Celery provider's)
own configuration reference. No Docker engine runs here: the file is parsed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.cluster.config import load_cluster_config
from pipelines.cluster.layout import airflow_cluster_environment
from pipelines.config import load_settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
AIRFLOW_SERVICES = [n for n in SERVICES if n.startswith("airflow-")]
SERVING_SERVICES = [n for n in SERVICES if n.startswith("serving")]
# Per machine in `make cluster`, fixed by the image in compose: not expected in the file.
HOST_SPECIFIC = {"AIRFLOW__API__HOST", "AIRFLOW__API__PORT", "AIRFLOW__LOGGING__LOGGING_LEVEL",
                 "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR"}


def _substituted(env: dict[str, Any]) -> dict[str, str]:
    """${VAR:?message} / ${VAR} as compose would fill them, with a placeholder value."""
    return {k: re.sub(r"\$\{[A-Z_]+(:\?[^}]*)?\}", "secret", str(v)) for k, v in env.items()}


def _command(name: str) -> str:
    command = SERVICES[name].get("command", "")
    return " ".join(command) if isinstance(command, list) else " ".join(command.split())


def _airflow_options() -> set[tuple[str, str]]:
    import airflow
    from airflow.providers.celery.get_provider_info import get_provider_info

    reference = yaml.safe_load((Path(airflow.__file__).parent / "config_templates" / "config.yml").read_text())
    sections = {**reference, **get_provider_info()["config"]}
    return {(section, key) for section, body in sections.items() for key in body["options"]}


def test_the_layout_has_the_celery_components_the_mlflow_server_redis_and_two_replicas() -> None:
    commands = {name: _command(name) for name in SERVICES}

    assert commands["airflow-worker"].startswith("airflow celery worker")
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert any(c.startswith(f"airflow {component}") for c in commands.values()), component
    assert "airflow db migrate" in commands["airflow-init"]
    assert commands["mlflow"].startswith("mlflow server") and "--backend-store-uri postgresql" in commands["mlflow"]
    assert "--artifacts-destination /mlartifacts" in commands["mlflow"]
    assert len(SERVING_SERVICES) == 2 and all(commands[n] == "alphatide serve" for n in SERVING_SERVICES)
    assert {"postgres", "redis"} <= set(SERVICES)


@pytest.mark.parametrize("name", AIRFLOW_SERVICES + SERVING_SERVICES)
def test_every_alphatide_variable_is_a_valid_setting(name: str) -> None:
    env = _substituted(SERVICES[name]["environment"])

    settings = load_settings(environ={k: v for k, v in env.items() if k.startswith("ALPHATIDE_")})

    assert settings.online_store == "redis" and settings.redis_url is not None
    assert settings.redis_url.get_secret_value().startswith("redis://redis:6379/")
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    assert settings.engine.dsn is not None and "@postgres:5432/" in settings.engine.dsn.get_secret_value()


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_every_airflow_variable_names_a_real_option_and_the_executor_is_celery(name: str) -> None:
    env = _substituted(SERVICES[name]["environment"])
    options = _airflow_options()

    unknown = [k for k in env if k.startswith("AIRFLOW__")
               and tuple(k.removeprefix("AIRFLOW__").lower().split("__", 1)) not in options]

    assert unknown == []
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"


def test_compose_sets_what_make_cluster_sets(tmp_path: Path) -> None:
    cfg = load_cluster_config(environ={}, run_dir=tmp_path)
    settings = load_settings(environ={"ALPHATIDE_HOME": str(tmp_path)})
    local = airflow_cluster_environment(cfg, settings, base={})
    compose = _substituted(SERVICES["airflow-scheduler"]["environment"])

    missing = sorted(k for k in local
                     if k.startswith(("AIRFLOW__", "ALPHATIDE_")) and k not in HOST_SPECIFIC and k not in compose)

    assert missing == []
    assert local["AIRFLOW__CORE__EXECUTOR"] == compose["AIRFLOW__CORE__EXECUTOR"]
