"""PostgreSQL and Redis as the cluster needs them: reachable, its databases created if missing (tests
drop theirs afterwards)."""

from __future__ import annotations

import psycopg
import redis
from psycopg import sql

from pipelines.cluster.config import ClusterConfig
from pipelines.errors import OperatorError


def _admin_connection(cfg: ClusterConfig) -> psycopg.Connection:
    try:
        return psycopg.connect(cfg.pg_url("postgres", driver="postgresql"), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise OperatorError(
            f"PostgreSQL at {cfg.pg_host}:{cfg.pg_port} (user {cfg.pg_user}) does not answer: {exc}".strip()
            + " (set ALPHATIDE_CLUSTER__PG_HOST/PG_PORT/PG_USER/PG_PASSWORD)"
        ) from None


def cluster_databases(cfg: ClusterConfig) -> tuple[str, ...]:
    return (cfg.airflow_db, cfg.mlflow_db, cfg.trading_db)


def ensure_databases(cfg: ClusterConfig) -> list[str]:
    """Create each database of the cluster that is missing; returns those created."""
    created = []
    with _admin_connection(cfg) as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for name in cluster_databases(cfg):
            if name not in existing:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                created.append(name)
    return created


def drop_databases(cfg: ClusterConfig) -> None:
    with _admin_connection(cfg) as conn:
        for name in cluster_databases(cfg):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def check_redis(cfg: ClusterConfig) -> None:
    try:
        redis.Redis.from_url(cfg.redis_url(cfg.broker_db), socket_timeout=5).ping()
    except redis.RedisError as exc:
        raise OperatorError(
            f"Redis at {cfg.redis_host}:{cfg.redis_port} does not answer: {exc} "
            "(set ALPHATIDE_CLUSTER__REDIS_HOST/REDIS_PORT/REDIS_PASSWORD)"
        ) from None


def flush_redis(cfg: ClusterConfig) -> None:
    """Empty the broker's and the online store's Redis dbs (tests, after the cluster is down)."""
    for db in (cfg.broker_db, cfg.online_db):
        redis.Redis.from_url(cfg.redis_url(db), socket_timeout=5).flushdb()
