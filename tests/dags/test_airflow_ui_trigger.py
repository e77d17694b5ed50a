"""`make airflow` as its users see it: the real `airflow standalone` (scheduler, dag-processor, triggerer and
API server as subprocesses; LocalExecutor, SQLite) on a small synthetic home, its UI in headless Chromium
(Debian's `chromium`, driven by playwright). The test signs in through the simple auth manager's form,
clicks Trigger on alphatide_universe and confirms the dialog; every later DAG must then run through its
asset events alone, each run traced back to the click, and succeed. A screenshot of the triggered run's
page is kept in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.airflow_runner import airflow_environment, unpause_chain
from pipelines.airflow_wiring import CHAIN_DAGS
from pipelines.config import Settings, load_settings
from tests.browser import screenshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]
USER = "admin"
STARTUP_TIMEOUT_S = 420.0  # standalone migrates, then parses six DAG files importing polars/MLflow/Feast
CHAIN_TIMEOUT_S = 1200.0  # a bound, not a speed goal: two loaded cores shared with other jobs
SMALL_CHAIN = {
    "ALPHATIDE_SOURCE": "synthetic", "ALPHATIDE_DATA__SYNTHETIC_SYMBOLS": "4",
    "ALPHATIDE_DATA__HISTORY_DAYS": "8", "ALPHATIDE_MODEL__ITERATIONS": "40",
    "ALPHATIDE_MODEL__SEQUENCE_TOWER": "false", "ALPHATIDE_UNIVERSE__SIZE": "1",
}

@dataclass(frozen=True)
class Airflow:
    url: str
    password: str
    settings: Settings
    log: Path

    def token(self) -> str:
        body = json.dumps({"username": USER, "password": self.password}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(json.load(response)["access_token"])

    def get(self, path: str, token: str) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            result: dict[str, Any] = json.load(response)
            return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(airflow: Airflow, proc: subprocess.Popen[bytes]) -> None:
    """Until the API server answers and the dag-processor has put alphatide_universe in the UI."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow standalone exited {proc.returncode}:\n{airflow.log.read_text()[-4000:]}")
        try:
            airflow.get("/dags/alphatide_universe", airflow.token())
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(3)
    pytest.fail(f"Airflow UI not up within {STARTUP_TIMEOUT_S:.0f} s:\n{airflow.log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group (standalone and every component and task it started), then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(1)  # the group may outlive its leader for a moment


@pytest.fixture
def airflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: Any) -> Iterator[Airflow]:
    """`make airflow` on a fresh home: unpause the consumers, then `airflow standalone` on a free port."""
    port = _free_port()
    password = secrets.token_urlsafe(12)
    passwords = tmp_path / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({USER: password}))
    env = {
        **SMALL_CHAIN, "ALPHATIDE_HOME": str(tmp_path / "home"), "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    unpause_chain(settings)
    log = tmp_path / "standalone.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), "standalone"],
            env=airflow_environment(settings), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    served = Airflow(url=f"http://127.0.0.1:{port}", password=password, settings=settings, log=log)
    try:
        _wait_healthy(served, proc)
        yield served
    finally:
        _stop(proc)


def _trigger_in_the_ui(page: Any, airflow: Airflow) -> str:
    """Sign in, open alphatide_universe, Trigger -> the dialog's Trigger; returns the new run's id (its URL)."""
    page.goto(f"{airflow.url}/dags/alphatide_universe")
    page.locator("input[name=username]").fill(USER)
    page.locator("input[name=password]").fill(airflow.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dags/alphatide_universe", timeout=60_000)
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog").filter(has_text="Trigger Dag - alphatide_universe")
    # A paused DAG's runs stay queued: the dialog's default unpauses the DAG with the run (see README).
    assert dialog.get_by_role("checkbox", name="Unpause alphatide_universe on trigger").is_checked()
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    deadline = time.monotonic() + 180.0
    while time.monotonic() < deadline:  # the run the click made, as the API records it
        token = airflow.token()
        runs = airflow.get("/dags/alphatide_universe/dagRuns?run_type=manual", token)["dag_runs"]
        mine = [r for r in runs if r["triggered_by"] == "ui" and r["triggering_user_name"] == USER]
        if mine:
            return str(mine[0]["dag_run_id"])
        time.sleep(2)
    screenshot(page, "airflow_ui_trigger.png")
    pytest.fail("the Trigger click made no run of alphatide_universe within 180 s")


def _runs(airflow: Airflow, token: str) -> dict[str, list[dict[str, Any]]]:
    runs = airflow.get("/dags/~/dagRuns?limit=100&order_by=run_after", token)["dag_runs"]
    by_dag: dict[str, list[dict[str, Any]]] = {d: [] for d in CHAIN_DAGS}
    for run in runs:
        by_dag.setdefault(run["dag_id"], []).append(run)
    return by_dag


def _sources(airflow: Airflow, token: str, run: dict[str, Any]) -> set[tuple[str, str]]:
    """(DAG, run) pairs whose asset events this run consumed."""
    path = f"/dags/{run['dag_id']}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}/upstreamAssetEvents"
    events = airflow.get(path, token)["asset_events"]
    return {(e["source_dag_id"], e["source_run_id"]) for e in events if e.get("source_dag_id")}


def _chain_from(airflow: Airflow, clicked: str) -> dict[str, dict[str, Any]]:
    """Per DAG, the first finished run descending (through consumed asset events) from the clicked run.

    Waits until every DAG of the chain has one or a run of the chain failed. Runs of the daily clock that
    the dialog's unpause also started are ignored: only runs traced to the click count.
    """
    deadline = time.monotonic() + CHAIN_TIMEOUT_S
    traced: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        token = airflow.token()
        by_dag = _runs(airflow, token)
        traced = {r["dag_id"]: r for r in by_dag["alphatide_universe"] if r["dag_run_id"] == clicked}
        ancestry = {("alphatide_universe", clicked)}
        for dag_id in CHAIN_DAGS[1:]:
            for run in by_dag[dag_id]:
                if run["state"] in ("success", "failed") and _sources(airflow, token, run) & ancestry:
                    traced[dag_id] = run
                    ancestry.add((dag_id, run["dag_run_id"]))
                    break
        if len(traced) == len(CHAIN_DAGS) or any(r["state"] == "failed" for r in traced.values()):
            return traced
        time.sleep(10)
    return traced


def test_a_click_on_trigger_in_the_ui_runs_every_dag_of_the_chain_to_success_under_the_scheduler(
    airflow: Airflow, browser: Any
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    started = time.monotonic()

    clicked = _trigger_in_the_ui(page, airflow)
    traced = _chain_from(airflow, clicked)

    states = {d: traced[d]["state"] if d in traced else "no run" for d in CHAIN_DAGS}
    page.goto(f"{airflow.url}/dags/alphatide_universe/runs/{urllib.parse.quote(clicked, safe='')}")
    page.wait_for_timeout(3000)
    screenshot(page, "airflow_ui_trigger.png", full_page=True)
    print(f"chain after the click: {states} in {time.monotonic() - started:.0f} s")
    assert states == dict.fromkeys(CHAIN_DAGS, "success"), (
        f"{states}; task logs under {airflow.settings.airflow_home / 'logs'}\n{airflow.log.read_text()[-3000:]}"
    )
    clicked_run = traced["alphatide_universe"]
    assert clicked_run["run_type"] == "manual" and clicked_run["triggered_by"] == "ui"
    assert clicked_run["triggering_user_name"] == USER
    assert all(traced[d]["run_type"] == "asset_triggered" for d in CHAIN_DAGS[1:])
