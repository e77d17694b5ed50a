"""The cluster's connection settings: where PostgreSQL, Redis and each component live (frozen, validated).

Read from the environment with the prefix `ALPHATIDE_CLUSTER__` (e.g. `ALPHATIDE_CLUSTER__PG_HOST`), with
defaults for one machine: PostgreSQL on 127.0.0.1:5432 (trust auth, user `postgres`), Redis on
127.0.0.1:6379. The rest of alphatide's settings (`ALPHATIDE_*`) are read as usual; the cluster sets the
ones it owns (MLflow URI, online store, trading DSN) for its components.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from pipelines.errors import ConfigError

ENV_PREFIX = "ALPHATIDE_CLUSTER__"
# pipelines.airflow_wiring.CHAIN_DAGS, here without importing Airflow (its import writes ~/airflow/airflow.cfg
# in the parent process); tests/cluster checks that both agree.
CHAIN_DAGS = (
    "alphatide_universe", "alphatide_backfill", "alphatide_validate",
    "alphatide_features", "alphatide_train", "alphatide_materialize",
)


Component = Literal["mlflow", "airflow", "workers", "serving"]


class ClusterConfig(BaseModel):
    """Every connection setting of `alphatide cluster`; see README "Running at scale"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Address the UIs and serving replicas bind (0.0.0.0 across machines).")
    public_host: str = Field("127.0.0.1", description="Address other components (and you) reach them by.")
    pg_host: str = "127.0.0.1"
    pg_port: int = Field(5432, ge=1, le=65535)
    pg_user: str = "postgres"
    pg_password: SecretStr | None = None
    airflow_db: str = Field("alphatide_airflow", pattern=r"^[a-z_][a-z0-9_]*$")
    mlflow_db: str = Field("alphatide_mlflow", pattern=r"^[a-z_][a-z0-9_]*$")
    trading_db: str = Field("alphatide_trading", pattern=r"^[a-z_][a-z0-9_]*$")
    redis_host: str = "127.0.0.1"
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_password: SecretStr | None = None
    broker_db: int = Field(0, ge=0, le=15, description="Redis db of the Celery broker.")
    online_db: int = Field(1, ge=0, le=15, description="Redis db of the Feast online store.")
    airflow_port: int = Field(8080, ge=1, le=65535)
    mlflow_port: int = Field(5000, ge=1, le=65535)
    serving_ports: tuple[int, ...] = Field((8000, 8001), min_length=1, description="One serving replica per port.")
    workers: int = Field(1, ge=0, le=16, description="Celery workers started here (0: workers run elsewhere).")
    worker_concurrency: int = Field(2, ge=1, le=64)
    worker_log_port: int = Field(8793, ge=1, le=65535, description="Worker i serves its task logs on this + i.")
    components: tuple[Component, ...] = Field(
        ("mlflow", "airflow", "workers", "serving"),
        description="What this machine runs (several machines: e.g. only `workers` on the worker hosts).",
    )
    run_dir: Path | None = Field(None, description="Pid files, logs, secrets; default <ALPHATIDE_HOME>/cluster.")
    admin_user: str = Field("admin", pattern=r"^[A-Za-z0-9_.-]+$")

    @model_validator(mode="after")
    def _distinct(self) -> ClusterConfig:
        if self.broker_db == self.online_db:
            raise ValueError("broker_db and online_db must differ (Celery would share the online store's db)")
        ports = [self.airflow_port, self.mlflow_port, *self.serving_ports]
        if len(set(ports)) != len(ports):
            raise ValueError(f"airflow_port, mlflow_port and serving_ports must all differ: {ports}")
        return self

    def pg_url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        auth = quote(self.pg_user)
        if self.pg_password is not None:
            auth += ":" + quote(self.pg_password.get_secret_value(), safe="")
        return f"{driver}://{auth}@{self.pg_host}:{self.pg_port}/{database}"

    def redis_url(self, db: int) -> str:
        auth = f":{quote(self.redis_password.get_secret_value(), safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{db}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.public_host}:{self.mlflow_port}"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.public_host}:{self.airflow_port}"

    def serving_urls(self) -> list[str]:
        return [f"http://{self.public_host}:{port}" for port in self.serving_ports]


def load_cluster_config(environ: dict[str, str] | None = None, **overrides: object) -> ClusterConfig:
    """Validate once; an `ALPHATIDE_CLUSTER__*` variable that names no field is an error (a typo)."""
    env = dict(os.environ if environ is None else environ)
    fields = {name.upper() for name in ClusterConfig.model_fields}
    unknown = sorted(k for k in env if k.upper().startswith(ENV_PREFIX) and k[len(ENV_PREFIX):].upper() not in fields)
    if unknown:
        raise ConfigError(f"unknown cluster variable(s): {', '.join(unknown)}")
    values = {k[len(ENV_PREFIX):].lower(): v for k, v in env.items() if k.upper().startswith(ENV_PREFIX)}
    try:
        return ClusterConfig.model_validate({**_parse(values), **overrides})
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid cluster configuration: {problems}") from None


def _parse(values: dict[str, str]) -> dict[str, object]:
    """Tuples are comma-separated in the environment (`ALPHATIDE_CLUSTER__SERVING_PORTS=8000,8001`)."""
    out: dict[str, object] = dict(values)
    for name in ("serving_ports", "components"):
        if name in values:
            out[name] = tuple(p.strip() for p in values[name].split(",") if p.strip())
    return out
