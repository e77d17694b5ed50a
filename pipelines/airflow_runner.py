"""Run the nightly chain through Airflow on the embedded default (SQLite metadata, in-process tasks).

`run_chain(settings)` prepares an Airflow home under `<ALPHATIDE_HOME>/airflow`, migrates its SQLite
database, then runs each alphatide DAG once with `dag.test()` in asset order: the time-scheduled DAG
first, then every DAG whose triggering assets were produced, exactly as the scheduler would chain them.
Airflow reads its configuration at import, so the chain runs in a child process with its own
environment. The child reports as it goes (`pipelines.chain_events`: each DAG's and task's start and
end, counted work, a failed task's error and log file) as JSON lines on its stdout; the parent hands
each event to `on_event` (the CLI's live display) and raises `OperatorError` with the failed task's
message when the chain stops. Task logs are kept under `<airflow home>/logs` where the UI finds them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines import chain_events
from pipelines.config import Settings
from pipelines.errors import OperatorError

Event = dict[str, Any]


def airflow_environment(
    settings: Settings, base: dict[str, str] | None = None, *, quiet: bool = False
) -> dict[str, str]:
    """Environment for any Airflow process of this home (standalone UI, CLI, the chain runner).

    The UI listens on 127.0.0.1 unless `AIRFLOW__API__HOST` says otherwise. `quiet` (the chain runner,
    whose console shows the chain's own progress) keeps Airflow's own logging at WARNING; the task logs
    still get every INFO line of the stages.
    """
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
            # A DAG file imports the stage functions (polars, MLflow, Feast): on a loaded 2-core machine that
            # took over Airflow's default 30 s and the DAG silently vanished from the chain.
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": env.get("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "180"),
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": env.get(
                "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT", "240"
            ),
            "AIRFLOW__API__PORT": env.get("AIRFLOW__API__PORT", "8080"),
            "AIRFLOW__API__HOST": env.get("AIRFLOW__API__HOST", "127.0.0.1"),
            # Task processes report to the API server's execution API: follow a non-default port.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": env.get(
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                f"http://localhost:{env.get('AIRFLOW__API__PORT', '8080')}/execution/",
            ),
            # Under the scheduler each task's supervisor calls the API server's execution API; on a loaded
            # 2-core machine with SQLite the default 5 s read timeout killed tasks before they started.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": env.get("AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT", "60"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get(
                "AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING" if quiet else "INFO"
            ),
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


def unpause_chain(settings: Settings) -> list[str]:
    """Parse the DAGs into the metadata DB and unpause the asset-triggered ones (an asset event reaching
    a paused DAG never starts it). `alphatide_universe` keeps its pause state: the scheduler starts no run
    of a paused DAG, so the UI's Trigger dialog unpauses it (its default), which also starts the daily
    schedule. Returns the unpaused DAG ids."""
    from pipelines.airflow_wiring import CHAIN_DAGS

    migrate(settings)
    airflow = str(Path(sys.executable).with_name("airflow"))
    env = airflow_environment(settings, quiet=True)
    consumers = [d for d in CHAIN_DAGS if d != "alphatide_universe"]
    steps = [
        [airflow, "dags", "reserialize"],
        [airflow, "dags", "unpause", "--treat-dag-id-as-regex", "-y", f"^({'|'.join(consumers)})$"],
    ]
    for command in steps:
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise OperatorError(f"`{' '.join(command[1:])}` failed:\n{result.stdout[-1500:]}\n{result.stderr[-3000:]}")
    return consumers


def _failure_message(results: list[Event], failures: list[Event], returncode: int, settings: Settings) -> str:
    failed = next((r for r in results if r.get("state") != "success"), None)
    where = f"DAG {failed['dag_id']} ended {failed['state']}" if failed else f"runner exited {returncode}"
    if not failures:
        return f"nightly chain stopped: {where}; task logs are under {settings.airflow_home / 'logs'}"
    last = failures[-1]
    return (
        f"nightly chain stopped: {where}: task {last['task_id']} failed:\n  {last['error']}\n"
        f"  task log: {last['log']}"
    )


def run_chain(
    settings: Settings, dag_prefix: str = "alphatide_", on_event: Callable[[Event], None] | None = None
) -> list[Event]:
    """Migrate, then run every DAG of the chain once, handing each event to `on_event` as it happens.

    Returns one result per DAG run (`dag_id`, `state`, `run_id`); raises OperatorError naming the DAG,
    the task, its error message and its log file when the chain stops.
    """
    migrate(settings)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.airflow_runner", dag_prefix],
        env=airflow_environment(settings, quiet=True),
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    results: list[Event] = []
    failures: list[Event] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        event = _event(line)
        if event is None:
            sys.stdout.write(line)  # a task's own print()
            continue
        if event[chain_events.EVENT_KEY] == "dag_finished":
            results.append({k: event[k] for k in ("dag_id", "state", "run_id")})
        elif event[chain_events.EVENT_KEY] == "task_failed":
            failures.append(event)
        if on_event is not None:
            on_event(event)
    returncode = proc.wait()
    if returncode != 0:
        raise OperatorError(_failure_message(results, failures, returncode, settings))
    return results


def _event(line: str) -> Event | None:
    if not line.startswith("{") or chain_events.EVENT_KEY not in line:
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and chain_events.EVENT_KEY in event else None


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
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"import error in {path}: {error}", file=sys.stderr)
        return 2
    observer = chain_events.ChainObserver(sys.stdout, Path(conf.get("logging", "base_log_folder")))
    chain_events.set_observer(observer)
    dags = {d: dag for d, dag in bag.dags.items() if d.startswith(prefix)}
    order = chain_order(dags)
    observer.emit("chain_started", dags=order)
    for dag_id in order:
        observer.emit("dag_started", dag_id=dag_id, tasks=[t.task_id for t in dags[dag_id].tasks])
        run = dags[dag_id].test()
        state = str(getattr(run, "state", "unknown"))
        observer.emit("dag_finished", dag_id=dag_id, state=state, run_id=getattr(run, "run_id", None))
        if state != "success":
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1] if len(sys.argv) > 1 else "alphatide_"))
