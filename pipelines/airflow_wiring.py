"""Wiring shared by the alphatide DAGs (kept in the installed package so every Airflow process imports it):
the assets that link them and the task defaults.

No logic lives here: each task calls exactly one function of `pipelines.nightly`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException

from pipelines.errors import OperatorError

UNIVERSE = Asset(name="alphatide.universe", uri="alphatide://lake/universe")
CANDLES = Asset(name="alphatide.candles", uri="alphatide://lake/candles")
VALIDATED = Asset(name="alphatide.validated_candles", uri="alphatide://lake/validated")
FEATURES = Asset(name="alphatide.features", uri="alphatide://lake/features")
MODEL = Asset(name="alphatide.model", uri="alphatide://registry/champion")
ONLINE_FEATURES = Asset(name="alphatide.online_features", uri="alphatide://feast/online")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "alphatide",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
}
TAGS = ["alphatide", "nightly"]

# Keyword arguments every alphatide DAG shares: `@dag(dag_id=..., schedule=..., **DAG_DEFAULTS)`.
DAG_DEFAULTS: dict[str, Any] = {
    "start_date": pendulum.datetime(2024, 1, 1, tz="UTC"),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
    "tags": TAGS,
}


def run_stage(stage: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one stage; an error that needs an operator fails the task at once instead of retrying."""
    try:
        return stage()
    except OperatorError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
