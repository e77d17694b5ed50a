"""The distributed layout on this machine in a temporary home: its own PostgreSQL databases
(alphatide_cluster_test_<pid>_*), its own Redis dbs, free ports; everything dropped afterwards."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

from pipelines.cluster import procs, runner, services
from pipelines.cluster.config import ClusterConfig, load_cluster_config
from pipelines.config import Settings, load_settings
from tests.fakes.trading_venue import FakeTradingVenue

# Small synthetic data, as tests/test_chain_runner.py: 4 symbols, 8 days of 5m bars, a short CatBoost.
SMALL_CHAIN = {
    "ALPHATIDE_SOURCE": "synthetic", "ALPHATIDE_DATA__SYNTHETIC_SYMBOLS": "4",
    "ALPHATIDE_DATA__HISTORY_DAYS": "8", "ALPHATIDE_MODEL__ITERATIONS": "40",
    "ALPHATIDE_MODEL__SEQUENCE_TOWER": "false", "ALPHATIDE_UNIVERSE__SIZE": "1",
    "ALPHATIDE_SERVING__MODEL_CHECK_S": "3",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def services_reachable() -> str | None:
    """Why the cluster cannot run here, or None."""
    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL on 127.0.0.1:5432 unreachable: {exc}"
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis on 127.0.0.1:6379 unreachable: {exc}"
    return None


@dataclass(frozen=True)
class RunningCluster:
    cfg: ClusterConfig
    settings: Settings
    run_dir: Path
    where: dict


def cluster_environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    pid = os.getpid()
    broker = 2 + 2 * (pid % 7)  # dbs 2..15, a pair per test process
    names = f"alphatide_cluster_test_{pid}"
    ports = [free_port() for _ in range(5)]
    return {
        **SMALL_CHAIN,
        "ALPHATIDE_HOME": str(home),
        "ALPHATIDE_CLUSTER__AIRFLOW_DB": f"{names}_airflow",
        "ALPHATIDE_CLUSTER__MLFLOW_DB": f"{names}_mlflow",
        "ALPHATIDE_CLUSTER__TRADING_DB": f"{names}_trading",
        "ALPHATIDE_CLUSTER__BROKER_DB": str(broker),
        "ALPHATIDE_CLUSTER__ONLINE_DB": str(broker + 1),
        "ALPHATIDE_CLUSTER__AIRFLOW_PORT": str(ports[0]),
        "ALPHATIDE_CLUSTER__MLFLOW_PORT": str(ports[1]),
        "ALPHATIDE_CLUSTER__SERVING_PORTS": f"{ports[2]},{ports[3]}",
        "ALPHATIDE_CLUSTER__WORKER_LOG_PORT": str(ports[4]),
        **(extra or {}),
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    reason = services_reachable()
    if reason is not None:
        pytest.skip(reason)
    # The paper engines read instrument metadata from a venue: a fake one on 127.0.0.1, reached by ccxt.
    venue = FakeTradingVenue({f"{b}USDT": (b, "USDT") for b in ("BTC", "ETH", "SOL", "XRP")}).__enter__()
    home = tmp_path_factory.mktemp("cluster") / "home"
    env = cluster_environment(home, {"ALPHATIDE_ENGINE__API_URL": venue.base_url})
    saved = os.environ.copy()
    os.environ.update(env)  # every component inherits the test's settings
    cfg = load_cluster_config()
    settings = load_settings()
    directory = runner.run_dir(cfg, settings)
    try:
        where = runner.up(cfg, settings)
        yield RunningCluster(cfg, settings, directory, where)
    finally:
        runner.down(cfg, settings)
        services.drop_databases(cfg)
        services.flush_redis(cfg)
        os.environ.clear()
        os.environ.update(saved)
        venue.__exit__(None, None, None)
        assert procs.marked(directory) == []
