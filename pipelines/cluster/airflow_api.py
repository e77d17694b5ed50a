"""The Airflow REST API as the cluster uses it: a token from the simple auth manager (`POST /auth/token`),
unpause, trigger a DAG run with parameters (`POST /api/v2/dags/{id}/dagRuns`, logical_date null), and wait
for every DAG of the chain to finish under the scheduler."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import httpx

from pipelines.errors import OperatorError, RetryableError

FINISHED = {"success", "failed"}


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._credentials = {"username": username, "password": password}
        self._token: str | None = None

    def close(self) -> None:
        self._client.close()

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = self._client.post("/auth/token", json=self._credentials)
            if response.status_code != 201:
                raise OperatorError(f"Airflow refused the login ({response.status_code}): {response.text[:300]}")
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, headers=self._headers(), **kwargs)
        except httpx.TransportError as exc:
            raise RetryableError(f"Airflow API {self.base_url} unreachable: {exc}") from exc
        if response.status_code == 401:  # token expired: log in again once
            self._token = None
            response = self._client.request(method, path, headers=self._headers(), **kwargs)
        if response.status_code >= 400:
            raise OperatorError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def dag_ids(self) -> set[str]:
        body = self._call("GET", "/api/v2/dags", params={"limit": 100})
        return {d["dag_id"] for d in body["dags"]}

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, note: str | None = None) -> str:
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if note:
            body["note"] = note
        return str(self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        body = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "-run_after", "limit": 20})
        return list(body["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])


def wait_for_dags(
    api: AirflowApi,
    dag_ids: Sequence[str],
    since: datetime,
    timeout_s: float,
    on_change: Callable[[str, str], None] | None = None,
    poll_s: float = 3.0,
) -> dict[str, dict[str, Any]]:
    """Wait until each DAG has a run due after `since` (aware) and finished; stop at the first
    failure. Returns dag_id -> its run (state, run_id, run_type, triggered_by)."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, dict[str, Any]] = {}
    shown: dict[str, str] = {}
    while time.monotonic() < deadline:
        for dag_id in dag_ids:
            if dag_id in seen and seen[dag_id]["state"] in FINISHED:
                continue
            fresh = [r for r in api.runs(dag_id) if r.get("run_after") and _at(r["run_after"]) >= since]
            if fresh:
                seen[dag_id] = min(fresh, key=lambda r: _at(r["run_after"]))
                state = seen[dag_id]["state"]
                if on_change is not None and shown.get(dag_id) != state:
                    on_change(dag_id, state)
                shown[dag_id] = state
                if state == "failed":
                    raise OperatorError(f"DAG {dag_id} run {seen[dag_id]['dag_run_id']} failed under the scheduler")
        if all(d in seen and seen[d]["state"] == "success" for d in dag_ids):
            return seen
        time.sleep(poll_s)
    waiting = [d for d in dag_ids if seen.get(d, {}).get("state") != "success"]
    raise OperatorError(f"the chain did not finish within {timeout_s:.0f} s: waiting for {', '.join(waiting)}")


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
