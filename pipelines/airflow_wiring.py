"""Wiring shared by the alphatide DAGs (kept in the installed package so every Airflow process imports it):
the assets that link them, the task defaults, the retrain DAG's trigger form, and how a stage's error
becomes a task failure.

No logic lives here: each task calls exactly one function of `pipelines.nightly`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, AssetAlias, Param
from airflow.sdk.exceptions import AirflowFailException

from pipelines import chain_events
from pipelines.errors import OperatorError, RetryableError

log = logging.getLogger(__name__)

UNIVERSE = Asset(name="alphatide.universe", uri="alphatide://lake/universe")
CANDLES = Asset(name="alphatide.candles", uri="alphatide://lake/candles")
VALIDATED = Asset(name="alphatide.validated_candles", uri="alphatide://lake/validated")
FEATURES = Asset(name="alphatide.features", uri="alphatide://lake/features")
# Every successful retrain (promoted or not): the online store and the universe follow it.
TRAINED = Asset(name="alphatide.retrain", uri="alphatide://registry/retrain")
# The champion: an event only when the champion changes, carrying the decision in its extras.
MODEL = Asset(name="alphatide.model", uri="alphatide://registry/champion")
MODEL_CHANGES = AssetAlias(name="alphatide.model_changes")
ONLINE_FEATURES = Asset(name="alphatide.online_features", uri="alphatide://feast/online")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "alphatide",
    "retries": 2,  # only RetryableError (network, rate limits) is retried: see run_stage
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
}
TAGS = ["alphatide", "nightly"]

# Keyword arguments every alphatide DAG shares: `@dag(dag_id=..., schedule=..., **DAG_DEFAULTS)`.
# Asset-triggered DAGs are created unpaused: an asset event reaching a paused DAG never starts it, so a
# paused consumer would silently end the chain. Only `alphatide_universe` (the daily clock) starts paused.
DAG_DEFAULTS: dict[str, Any] = {
    "start_date": pendulum.datetime(2024, 1, 1, tz="UTC"),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
    "tags": TAGS,
    "is_paused_upon_creation": False,
}
CHAIN_DAGS = (
    "alphatide_universe",
    "alphatide_backfill",
    "alphatide_validate",
    "alphatide_features",
    "alphatide_train",
    "alphatide_materialize",
)
TRANSIENT = (RetryableError, ConnectionError, TimeoutError)


def _task_identity() -> chain_events.TaskIdentity | None:
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        return chain_events.TaskIdentity(ti.dag_id, ti.task_id, ti.run_id, int(ti.try_number))
    except Exception:  # called outside a running task (tests, a shell)
        return None


def run_stage(stage: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one stage. Only transient errors (`RetryableError`, connection errors, timeouts) are left to
    Airflow's retries; anything else (an `OperatorError`: bad config, bad data, a corrupt file; or an
    unexpected error) fails the task at once with its message, since running it again cannot help."""
    with chain_events.task_scope(_task_identity()):
        try:
            return stage()
        except TRANSIENT:
            raise
        except OperatorError as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            log.exception("unexpected error in the stage")
            raise AirflowFailException(f"unexpected {type(exc).__name__}: {exc}") from exc


def nightly_schedule() -> str | None:
    """`alphatide_universe`'s schedule: ALPHATIDE_NIGHTLY_SCHEDULE (`@daily`; `none`: triggered runs only, as
    the cluster starts it, so that unpausing it does not start a run of its own)."""
    from pipelines.config import load_settings
    from pipelines.errors import ConfigError

    try:
        value = load_settings().nightly_schedule
    except ConfigError as exc:
        log.warning("nightly schedule: settings invalid (%s); using @daily", exc)
        value = "@daily"
    return None if value == "none" else value


def train_params() -> dict[str, Param]:
    """The retrain DAG's trigger form, its defaults read from the settings (ALPHATIDE_MODEL__*)."""
    from pipelines.config import ModelConfig, load_settings
    from pipelines.errors import ConfigError

    try:
        model = load_settings().model
        origin = "from the settings"
    except ConfigError as exc:
        log.warning("retrain form: settings invalid (%s); showing the built-in defaults", exc)
        model = ModelConfig()
        origin = "built-in default (the settings do not load)"
    return {
        "horizon_bars": Param(
            model.horizon_bars, type="integer", minimum=1, maximum=288,
            description=f"Label horizon, bars ({origin}: ALPHATIDE_MODEL__HORIZON_BARS).",
        ),
        "train_months": Param(
            model.train_months, type="integer", minimum=1, maximum=60,
            description=f"Training window, months ({origin}: ALPHATIDE_MODEL__TRAIN_MONTHS).",
        ),
        "optuna_trials": Param(
            model.optuna_trials, type="integer", minimum=0, maximum=1000,
            description=f"Optuna trials ({origin}: ALPHATIDE_MODEL__OPTUNA_TRIALS).",
        ),
    }


def publish_model_events(outlet_events: Any, summary: dict[str, Any]) -> None:
    """Extras of the train task's asset events: `alphatide.retrain` always (version, decision);
    `alphatide.model` only when the champion changed, carrying the whole decision."""
    decision = summary.get("decision") or {}
    outlet_events[TRAINED].extra = {
        "version": summary.get("version"),
        "promoted": summary.get("promoted"),
        "champion": summary.get("champion"),
        "reasons": summary.get("reasons", []),
    }
    if summary.get("champion") != summary.get("champion_before"):
        outlet_events[MODEL_CHANGES].add(MODEL, extra={**decision, "run_id": summary.get("run_id")})
