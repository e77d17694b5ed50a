"""Run the nightly chain through Airflow on the embedded default (SQLite metadata, in-process tasks).

`run_chain(settings)` prepares an Airflow home under `<ALPHATIDE_HOME>/airflow`, migrates its SQLite
database, then runs each alphatide DAG once with `dag.test()` in asset order: the time-scheduled DAG
first, then every DAG whose triggering assets were produced, exactly as the scheduler would chain them.
Airflow reads its configuration at import, so the chain runs in a child process with its own
environment; the parent only waits and reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.errors import OperatorError


def airflow_environment(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for any Airflow process of this home (standalone UI, CLI, the chain runner)."""
    env = dict(os.environ if base is None else base)
    home = settings.airflow_home
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__API__PORT": env.get("AIRFLOW__API__PORT", "8080"),
            # Task processes report to the API server's execution API: follow a non-default port.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": env.get(
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                f"http://localhost:{env.get('AIRFLOW__API__PORT', '8080')}/execution/",
            ),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
            "ALPHATIDE_HOME": str(settings.home),
        }
    )
    # `airflow standalone` starts its components as `airflow ...` subprocesses: the venv's bin must be on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # Tasks import `pipelines`: make the checkout importable even where it is not pip-installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(settings.dags_dir.parent), env.get("PYTHONPATH", "")) if p
    )
    return env


def migrate(settings: Settings) -> None:
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), "db", "migrate"], env=airflow_environment(settings), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise OperatorError(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")


def run_chain(settings: Settings, dag_prefix: str = "alphatide_") -> list[dict[str, Any]]:
    """Migrate, then run every DAG of the chain once; raises OperatorError naming the DAG that failed."""
    migrate(settings)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.airflow_runner", dag_prefix],
        env=airflow_environment(settings),
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    results = [json.loads(line) for line in lines]
    if proc.returncode != 0:
        failed = next((r for r in results if r.get("state") != "success"), None)
        where = (
            f"DAG {failed['dag_id']} ended {failed['state']}"
            if failed
            else f"runner exited {proc.returncode}"
        )
        raise OperatorError(
            f"nightly chain stopped: {where}; task logs are under {settings.airflow_home}/logs"
        )
    return results


def chain_order(dags: dict[str, Any]) -> list[str]:
    """DAG ids in the order the asset triggers would run them (time-scheduled DAGs first)."""
    from airflow.sdk import Asset

    def inlets(dag: Any) -> set[str]:
        schedule = getattr(dag, "schedule", None)
        if isinstance(schedule, list | tuple):
            return {a.uri for a in schedule if isinstance(a, Asset)}
        return set()

    def outlets(dag: Any) -> set[str]:
        return {o.uri for t in dag.tasks for o in (t.outlets or []) if isinstance(o, Asset)}

    produced: set[str] = set()
    order: list[str] = []
    pending = dict(dags)
    while pending:
        ready = sorted(d for d, dag in pending.items() if inlets(dag) <= produced)
        if not ready:
            raise OperatorError(f"DAGs {sorted(pending)} wait for assets nothing produces")
        for dag_id in ready:
            order.append(dag_id)
            produced |= outlets(pending.pop(dag_id))
    return order


def _main(prefix: str) -> int:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"import error in {path}: {error}", file=sys.stderr)
        return 2
    dags = {d: dag for d, dag in bag.dags.items() if d.startswith(prefix)}
    for dag_id in chain_order(dags):
        run = dags[dag_id].test()
        state = str(getattr(run, "state", "unknown"))
        print(
            json.dumps({"dag_id": dag_id, "state": state, "run_id": getattr(run, "run_id", None)}), flush=True
        )
        if state != "success":
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1] if len(sys.argv) > 1 else "alphatide_"))
