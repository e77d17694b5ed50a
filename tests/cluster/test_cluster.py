"""`make cluster` as an operator uses it: the layout up on this machine, the nightly chain triggered through
Airflow's REST API and run by the scheduler on Celery workers, the champion registered on the MLflow
server and picked up by both serving replicas without a restart, one replica killed with -9 while the
other serves on, then `make cluster-down` leaving no process behind."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psutil
import psycopg
import pytest
from mlflow.tracking import MlflowClient

from pipelines.airflow_wiring import CHAIN_DAGS as WIRED_CHAIN
from pipelines.cluster import procs, runner
from pipelines.cluster.config import CHAIN_DAGS
from tests.cluster.conftest import RunningCluster

pytestmark = [pytest.mark.cluster, pytest.mark.integration, pytest.mark.slow]


def _signals(cluster: RunningCluster, version: str, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """/signal from every live replica once each serves `version` (the watcher polls every 3 s here)."""
    deadline = time.monotonic() + timeout_s
    answers: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        answers = []
        for url in cluster.cfg.serving_urls():
            try:
                answers.append(httpx.get(f"{url}/signal", params={"symbol": "BTC/USDT"}, timeout=10).json())
            except httpx.TransportError:
                continue
        if answers and all(a.get("model_version") == version for a in answers):
            return answers
        time.sleep(1)
    raise AssertionError(f"replicas did not serve version {version} within {timeout_s} s: {answers}")


def test_up_starts_every_component_of_the_celery_layout(cluster: RunningCluster) -> None:
    running = procs.status(cluster.run_dir)

    assert CHAIN_DAGS == WIRED_CHAIN
    expected = {"mlflow", "api-server", "scheduler", "dag-processor", "triggerer", "worker-0", "serving-0", "serving-1"}
    assert {name for name, pid in running.items() if pid} == expected
    assert httpx.get(f"{cluster.cfg.mlflow_url}/health", timeout=10).status_code == 200
    scheduler_env = psutil.Process(running["scheduler"]).environ()
    assert scheduler_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert scheduler_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert scheduler_env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://127.0.0.1:6379/")


def test_the_chain_triggered_through_the_rest_api_runs_on_the_celery_workers(cluster: RunningCluster) -> None:
    result = runner.trigger(cluster.cfg, cluster.settings, conf={"requested_by": "tests/cluster"}, timeout_s=480)

    runs = result["runs"]
    assert {d: r["state"] for d, r in runs.items()} == {d: "success" for d in CHAIN_DAGS}
    assert runs["alphatide_universe"]["run_type"] == "manual"
    assert {runs[d]["run_type"] for d in CHAIN_DAGS[1:]} == {"asset_triggered"}
    worker_log = (cluster.run_dir / "logs" / "worker-0.log").read_text()
    for dag_id in CHAIN_DAGS:  # every DAG's tasks went through the broker to the worker
        assert f"Executing workload in Celery: dag_rel_path=PurePosixPath('{dag_id}.py')" in worker_log
    champion = MlflowClient(tracking_uri=cluster.cfg.mlflow_url).get_model_version_by_alias(
        cluster.settings.model.name, "champion"
    )
    assert champion.version == "1" and champion.status == "READY"


def test_both_replicas_serve_the_new_champion_identically_without_a_restart(cluster: RunningCluster) -> None:
    started = {name: pid for name, pid in procs.status(cluster.run_dir).items() if name.startswith("serving")}

    first, second = _signals(cluster, "1")

    assert procs.status(cluster.run_dir) | started == procs.status(cluster.run_dir)  # same pids: no restart
    assert first["p_up"] == second["p_up"] and first["action"] == second["action"]
    assert first["feature_time"] == second["feature_time"] and first["model_name"] == second["model_name"]


def _orders_twice(cluster: RunningCluster) -> list[tuple[str]]:
    with psycopg.connect(cluster.cfg.pg_url(cluster.cfg.trading_db, driver="postgresql")) as conn:
        return conn.execute(
            "SELECT client_order_id FROM engine_orders GROUP BY client_order_id HAVING count(*) > 1"
        ).fetchall()


def test_kill_9_of_the_active_replica_another_takes_over_and_no_order_twice(cluster: RunningCluster) -> None:
    urls = cluster.cfg.serving_urls()
    name_of = {url: f"serving-{i}" for i, url in enumerate(urls)}
    from serving.engine.takeover import measure_takeover, wait_for_active

    wait_for_active(urls, timeout_s=60)
    killed, survivor, takeover_s = measure_takeover(
        urls, kill=lambda url: procs.kill_now(cluster.run_dir, name_of[url])
    )

    answer = httpx.get(f"{survivor}/signal", params={"symbol": "BTC/USDT"}, timeout=10).json()
    assert survivor != killed and procs.status(cluster.run_dir)[name_of[survivor]] is not None
    assert answer["model_version"] == "1"
    assert takeover_s < 10
    assert _orders_twice(cluster) == []


def test_cluster_down_leaves_no_process_behind(cluster: RunningCluster) -> None:
    before = procs.marked(cluster.run_dir)

    runner.down(cluster.cfg, cluster.settings)

    assert before  # the cluster was running
    assert procs.marked(cluster.run_dir) == []
    assert all(pid is None for pid in procs.status(cluster.run_dir).values())
