"""`alphatide cluster up|down|status|trigger`: start the layout, stop it, show it, run the chain on it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from pipelines.cluster import procs, services
from pipelines.cluster.airflow_api import AirflowApi, wait_for_dags
from pipelines.cluster.config import CHAIN_DAGS, ClusterConfig
from pipelines.cluster.layout import BIN, Component, airflow_cluster_environment, cluster_secrets, components, run_dir
from pipelines.config import Settings, mask_uri
from pipelines.errors import OperatorError

Say = Callable[[str], None]
STOP_ORDER = ("serving", "worker", "triggerer", "scheduler", "dag-processor", "api-server", "mlflow")


def _wait_ready(component: Component, started: procs.Started, timeout_s: float) -> None:
    """Until the component's URL answers (any HTTP status below 500; a serving replica may say 503 before a
    champion exists, which still means it is up); fails at once when the process died."""
    if component.ready_url is None:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = httpx.get(component.ready_url, timeout=5).status_code
            if status < 500 or component.name.startswith("serving"):
                return
        except httpx.TransportError:
            pass
        if not procs.status(started.log.parent.parent).get(component.name):
            raise OperatorError(f"{component.name} exited while starting:\n{_tail(started.log)}")
        time.sleep(1)
    raise OperatorError(f"{component.name} did not answer {component.ready_url} within {timeout_s:.0f} s:\n"
                        f"{_tail(started.log)}")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _migrate(env: dict[str, str]) -> None:
    result = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise OperatorError(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")


def api_client(cfg: ClusterConfig, settings: Settings) -> AirflowApi:
    password = cluster_secrets(run_dir(cfg, settings), cfg.admin_user)["admin_password"]
    return AirflowApi(cfg.airflow_url, cfg.admin_user, password)


def up(cfg: ClusterConfig, settings: Settings, say: Say = print, ready_timeout_s: float = 240.0) -> dict[str, Any]:
    """Start every component of this machine (those already running are left alone); returns where each is."""
    directory = run_dir(cfg, settings)
    running = {name for name, pid in procs.status(directory).items() if pid}
    services.check_redis(cfg)
    if {"mlflow", "airflow"} & set(cfg.components):
        created = services.ensure_databases(cfg)
        if created:
            say(f"cluster: created PostgreSQL database(s) {', '.join(created)}")
    if "airflow" in cfg.components and "api-server" not in running:
        say("cluster: airflow db migrate (PostgreSQL) ...")
        _migrate(airflow_cluster_environment(cfg, settings))
    for component in components(cfg, settings):
        if component.name in running:
            say(f"cluster: {component.name} already running")
            continue
        started = procs.start(component.name, component.argv, component.env, directory)
        say(f"cluster: started {component.name} (pid {started.pid}, log {started.log})")
        _wait_ready(component, started, ready_timeout_s)
    if "airflow" in cfg.components:
        _unpause_chain(cfg, settings, say, ready_timeout_s)
    where = describe(cfg, settings)
    say(banner(where))
    return where


def _unpause_chain(cfg: ClusterConfig, settings: Settings, say: Say, timeout_s: float) -> None:
    """Wait for the dag-processor to parse the chain, then unpause every DAG of it (an asset event reaching
    a paused DAG never starts it; a trigger of a paused DAG stays queued). The daily clock of
    `alphatide_universe` is ALPHATIDE_NIGHTLY_SCHEDULE (`none` by default in the cluster: triggered only)."""
    api = api_client(cfg, settings)
    try:
        deadline = time.monotonic() + timeout_s
        while not set(CHAIN_DAGS) <= api.dag_ids():
            if time.monotonic() > deadline:
                raise OperatorError(f"the dag-processor did not parse {', '.join(CHAIN_DAGS)} within {timeout_s:.0f} s")
            time.sleep(3)
        for dag_id in CHAIN_DAGS:
            api.set_paused(dag_id, False)
        say(f"cluster: unpaused {', '.join(CHAIN_DAGS)}")
    finally:
        api.close()


def describe(cfg: ClusterConfig, settings: Settings) -> dict[str, Any]:
    directory = run_dir(cfg, settings)
    return {
        "airflow_ui": cfg.airflow_url,
        "airflow_login": {"user": cfg.admin_user, "password_file": str(directory / "passwords.json")},
        "mlflow_ui": cfg.mlflow_url,
        "serving": [f"{url}/signal?symbol=BTC/USDT" for url in cfg.serving_urls()],
        "celery_broker": mask_uri(cfg.redis_url(cfg.broker_db)),
        "online_store": mask_uri(cfg.redis_url(cfg.online_db)),
        "logs": str(directory / "logs"),
        "processes": procs.status(directory),
    }


def banner(where: dict[str, Any]) -> str:
    lines = [
        "\nalphatide cluster is up:",
        f"  Airflow UI   {where['airflow_ui']}  (user {where['airflow_login']['user']}, password in "
        f"{where['airflow_login']['password_file']})",
        f"  MLflow UI    {where['mlflow_ui']}",
        *(f"  serving      {url}" for url in where["serving"]),
        f"  Celery       broker {where['celery_broker']}, online store {where['online_store']}",
        f"  logs         {where['logs']}",
        "Run the chain: .venv/bin/alphatide cluster trigger   Stop: make cluster-down",
    ]
    return "\n".join(lines)


def down(cfg: ClusterConfig, settings: Settings, say: Say = print) -> list[str]:
    directory = run_dir(cfg, settings)
    names = sorted(procs.status(directory), key=lambda n: next(
        (i for i, prefix in enumerate(STOP_ORDER) if n.startswith(prefix)), len(STOP_ORDER)))
    stopped = procs.stop_all(directory, names)
    left = procs.marked(directory)
    say(f"cluster: stopped {', '.join(stopped) or 'nothing (not running)'}"
        + (f"; STILL RUNNING: {[p.pid for p in left]}" if left else "; no process left"))
    return stopped


def trigger(
    cfg: ClusterConfig, settings: Settings, conf: dict[str, Any] | None = None, wait: bool = True,
    timeout_s: float = 3600.0, say: Say = print,
) -> dict[str, Any]:
    """Trigger `alphatide_universe` through the REST API (the rest follow on asset events); with `wait`,
    wait for every DAG of the chain to succeed under the scheduler."""
    api = api_client(cfg, settings)
    try:
        since = datetime.now(UTC)
        run_id = api.trigger("alphatide_universe", conf=conf, note="alphatide cluster trigger")
        say(f"cluster: triggered alphatide_universe run {run_id} through {cfg.airflow_url}/api/v2")
        if not wait:
            return {"run_id": run_id}
        runs = wait_for_dags(api, CHAIN_DAGS, since, timeout_s, on_change=lambda d, s: say(f"  {d:24s} {s}"))
        return {"run_id": run_id, "runs": {d: {k: r.get(k) for k in ("dag_run_id", "state", "run_type")}
                                            for d, r in runs.items()}}
    finally:
        api.close()


def status_json(cfg: ClusterConfig, settings: Settings) -> str:
    return json.dumps(describe(cfg, settings), indent=2)
