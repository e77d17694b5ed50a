"""What each cluster component runs and with which environment.

Every Airflow process gets the embedded home's environment (`pipelines.airflow_runner.airflow_environment`:
DAGs folder, import timeouts, PATH/PYTHONPATH), then the cluster's: the CeleryExecutor, metadata in
PostgreSQL, Redis as the broker, the Celery results in PostgreSQL, the secrets every component must share
(JWT secret of the execution API, Fernet key, API secret) and the simple auth manager's admin. Tasks and
serving replicas read the same alphatide settings: the MLflow server, the Redis online store, the
trading store in PostgreSQL.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from pipelines.airflow_runner import airflow_environment
from pipelines.cluster.config import ClusterConfig
from pipelines.config import Settings

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str | None = None  # answers 200 once the component is up


def run_dir(cfg: ClusterConfig, settings: Settings) -> Path:
    return (cfg.run_dir or settings.home / "cluster").resolve()


def cluster_secrets(directory: Path, admin_user: str) -> dict[str, str]:
    """Generated once per run directory (mode 600) and shared by every component; also the simple auth
    manager's passwords file (`passwords.json`), so the admin's password is known before the API starts."""
    from cryptography.fernet import Fernet

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "secrets.json"
    if path.exists():
        values: dict[str, str] = json.loads(path.read_text())
    else:
        values = {
            "jwt_secret": secrets.token_urlsafe(32),
            "api_secret_key": secrets.token_urlsafe(32),
            "fernet_key": Fernet.generate_key().decode(),
            "admin_password": secrets.token_urlsafe(12),
        }
        path.touch(mode=0o600)
        path.write_text(json.dumps(values))
    passwords = directory / "passwords.json"
    passwords.touch(mode=0o600)
    passwords.write_text(json.dumps({admin_user: values["admin_password"]}))
    return values


def alphatide_environment(cfg: ClusterConfig, base: dict[str, str]) -> dict[str, str]:
    """The alphatide settings the cluster owns, for tasks and replicas alike."""
    return {
        **base,
        "ALPHATIDE_MLFLOW_URI": cfg.mlflow_url,
        "ALPHATIDE_ONLINE_STORE": "redis",
        "ALPHATIDE_REDIS_URL": cfg.redis_url(cfg.online_db),
        "ALPHATIDE_ENGINE__DSN": cfg.pg_url(cfg.trading_db, driver="postgresql"),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        # Triggered runs only unless set: the cluster unpauses alphatide_universe, and a daily clock would
        # start a run of its own at once (the most recent midnight), then one each night.
        "ALPHATIDE_NIGHTLY_SCHEDULE": base.get("ALPHATIDE_NIGHTLY_SCHEDULE", "none"),
    }


def airflow_cluster_environment(
    cfg: ClusterConfig, settings: Settings, base: dict[str, str] | None = None
) -> dict[str, str]:
    directory = run_dir(cfg, settings)
    values = cluster_secrets(directory, cfg.admin_user)
    env = airflow_environment(settings, alphatide_environment(cfg, dict(os.environ if base is None else base)))
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": cfg.pg_url(cfg.airflow_db),
        # psycopg 3 is async too: without this Airflow derives postgresql+asyncpg (not installed).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": cfg.pg_url(cfg.airflow_db),
        "AIRFLOW__CELERY__BROKER_URL": cfg.redis_url(cfg.broker_db),
        # psycopg (v3) results backend: Airflow >= 3.2 (SQLAlchemy 2), the provider's config says so.
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + cfg.pg_url(cfg.airflow_db),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(cfg.worker_concurrency),
        "AIRFLOW__API__HOST": cfg.host,
        "AIRFLOW__API__PORT": str(cfg.airflow_port),
        "AIRFLOW__API__BASE_URL": cfg.airflow_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{cfg.airflow_url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": values["jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": values["api_secret_key"],
        "AIRFLOW__CORE__FERNET_KEY": values["fernet_key"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{cfg.admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(directory / "passwords.json"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(settings.airflow_home / "logs"),
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    })
    return env


def components(cfg: ClusterConfig, settings: Settings, base: dict[str, str] | None = None) -> list[Component]:
    """Every long-running process of this machine, in start order (MLflow, Airflow, workers, serving)."""
    airflow = str(BIN / "airflow")
    env = airflow_cluster_environment(cfg, settings, base)
    out: list[Component] = []
    if "mlflow" in cfg.components:
        artifacts = run_dir(cfg, settings) / "mlartifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        out.append(Component("mlflow", [
            str(BIN / "mlflow"), "server", "--host", cfg.host, "--port", str(cfg.mlflow_port),
            "--backend-store-uri", cfg.pg_url(cfg.mlflow_db), "--artifacts-destination", str(artifacts),
            "--workers", "1", "--allowed-hosts", f"{cfg.public_host}:{cfg.mlflow_port},localhost:*,127.0.0.1:*",
        ], env, f"{cfg.mlflow_url}/health"))
    if "airflow" in cfg.components:
        out.append(Component("api-server", [airflow, "api-server", "--host", cfg.host, "--port",
                                            str(cfg.airflow_port)], env, f"{cfg.airflow_url}/api/v2/monitor/health"))
        out += [Component(name, [airflow, name], env) for name in ("scheduler", "dag-processor")]
        out.append(Component("triggerer", [airflow, "triggerer", "--skip-serve-logs"], env))
    for i in range(cfg.workers if "workers" in cfg.components else 0):
        worker_env = {**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(cfg.worker_log_port + i)}
        out.append(Component(f"worker-{i}", [
            airflow, "celery", "worker", "--concurrency", str(cfg.worker_concurrency),
            "--celery-hostname", f"alphatide-worker-{i}@%h",
        ], worker_env))
    out += serving_replicas(cfg, env) if "serving" in cfg.components else []
    return out


def serving_replicas(cfg: ClusterConfig, env: dict[str, str]) -> list[Component]:
    """`alphatide serve` once per port, with the replicas' lease turned on (see `lease_environment`)."""
    serving_env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW__")}
    replicas = []
    for i, port in enumerate(cfg.serving_ports):
        replica_env = {**lease_environment(i), **serving_env, "ALPHATIDE_HOST": cfg.host, "ALPHATIDE_PORT": str(port)}
        url = f"http://{cfg.public_host}:{port}"
        replicas.append(Component(f"serving-{i}", [str(BIN / "alphatide"), "serve"], replica_env, f"{url}/health"))
    return replicas


def lease_environment(index: int) -> dict[str, str]:
    """What turns the engine's leader lease on for every replica: a session-level PostgreSQL advisory lock
    on the shared trading store (ALPHATIDE_ENGINE__DSN); the replicas race for it, exactly one trades, a
    standby takes over when the holder's connection drops (kill -9 included)."""
    return {"ALPHATIDE_ENGINE__LEADER__ENABLED": "true"}
