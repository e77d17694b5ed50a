"""Settings of the engine's strategies and of the serving tier's health monitor (owned by the engine).

Typed and validated once (pydantic-settings, frozen, extra="forbid"), env prefix ALPHATIDE_:

- ``ALPHATIDE_STRATEGIES``: a JSON list of strategy entries, e.g.
  ``[{"id": "directional", "kind": "directional"}, {"id": "mm-btc", "kind": "market_making",
  "allocation": "500", "params": {"symbol": "BTC/USDT"}}]``. Default: the directional strategy alone,
  on the whole account. `kind` names a factory of `serving.strategies.registry`.
- ``ALPHATIDE_VENUES``: a JSON list of venues besides the engine's default one (key ""), each a ccxt id
  with its mode and URL overrides, e.g. ``[{"name": "binance", "mode": "live"}, {"name": "binanceusdm",
  "mode": "live", "order_stream": true}]`` (`VenueEntry`). Their secrets never go in the JSON: they come
  from ``ALPHATIDE_VENUE_<NAME>__API_KEY``, ``..__API_SECRET``, ``..__WALLET_ADDRESS``, ``..__PRIVATE_KEY``,
  ``..__PASSWORD`` (no defaults; `serving.engine.venues`). Strategies name these venues by `name`.
- ``ALPHATIDE_HEALTH__*``: the health monitor's timer and windows (`HealthConfig`).
- ``ALPHATIDE_AIRFLOW__URL``, ``..._USERNAME``, ``..._PASSWORD``: the Airflow REST API the retrain action
  calls (unset: the retrain is logged and alerted as not configured).
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from pipelines.config import ENV_PREFIX
from pipelines.config_checks import check_json_variables
from pipelines.errors import ConfigError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StrategyEntry(_Frozen):
    """One strategy of the engine: a stable id, a kind from the registry, its capital allocation."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$", description="Stable across restarts (attribution).")
    kind: str = Field(pattern=r"^[a-z0-9_]+$", description="A kind registered in serving.strategies.registry.")
    allocation: Decimal | None = Field(
        None, gt=0, description="Capital of this strategy, quote currency; None = the whole account."
    )
    venue: str = Field("", description="Default venue of its intents ('' = the engine's default broker).")
    params: dict[str, Any] = Field(default_factory=dict, description="Kind-specific parameters.")


class VenueEntry(_Frozen):
    """One more venue of the engine (`ALPHATIDE_VENUES`); secrets: `ALPHATIDE_VENUE_<NAME>__*` variables."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", description="ccxt exchange id (binance, binanceusdm, backpack, ...).")
    mode: Literal["paper", "live"] | None = Field(None, description="paper|live; default: the engine's mode.")
    api_url: str | None = Field(None, pattern=r"^https?://", description="REST base URL override (a local fake).")
    ws_url: str | None = Field(None, pattern=r"^wss?://", description="Private WebSocket URL override (a local fake).")
    order_stream: bool | None = Field(
        None, description="Live: order updates from the venue's WebSocket; default: the engine's order_stream."
    )


def _default_strategies() -> tuple[StrategyEntry, ...]:
    return (StrategyEntry(id="directional", kind="directional"),)


class HealthConfig(_Frozen):
    """The serving tier's health measurements fed to the engine (SPEC 10) and their windows."""

    enabled: bool = True
    interval_s: float = Field(5.0, gt=0, le=600, description="How often the inputs are measured and sent.")
    calibration_window: int = Field(200, ge=10, description="Resolved signals in the live calibration error.")
    calibration_min_resolved: int = Field(30, ge=5, description="Resolved signals before the error is reported.")
    calibration_bins: int = Field(10, ge=2, le=50, description="Bins of the expected calibration error.")
    horizon_s: float = Field(300.0, gt=0, description="A signal at t is resolved at t + horizon (one 5m bar).")
    drift_window: int = Field(500, ge=50, description="Recent stream rows tested against training.")
    drift_min_rows: int = Field(100, ge=50, description="Stream rows before the drift test runs.")
    drift_every_s: float = Field(300.0, gt=0, description="The KS test is heavy: at most this often.")
    retrain_cooldown_s: float = Field(3600.0, ge=0, description="At most one retrain trigger per cooldown.")
    recover_p99_ms: float | None = Field(
        None, gt=0, description="p99 under which the degraded scorer goes back to the full model (default: limit)."
    )


class AirflowConfig(_Frozen):
    url: str | None = Field(None, pattern=r"^https?://", description="Airflow API server, e.g. http://127.0.0.1:8080")
    username: str | None = None
    password: SecretStr | None = None
    dag_id: str = "alphatide_train"
    timeout_s: float = Field(10.0, gt=0, le=120)

    @property
    def configured(self) -> bool:
        return self.url is not None and self.username is not None and self.password is not None


class EngineExtras(BaseSettings):
    """Strategies, health and Airflow settings (read from the environment once, at startup)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="forbid", case_sensitive=False
    )

    strategies: tuple[StrategyEntry, ...] = Field(default_factory=_default_strategies)
    venues: tuple[VenueEntry, ...] = ()
    health: HealthConfig = HealthConfig()
    airflow: AirflowConfig = AirflowConfig()

    @field_validator("strategies")
    @classmethod
    def _unique_ids(cls, value: tuple[StrategyEntry, ...]) -> tuple[StrategyEntry, ...]:
        ids = [s.id for s in value]
        if not ids:
            raise ValueError("at least one strategy entry is needed")
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"strategy ids must be unique: {', '.join(dupes)}")
        return value

    @field_validator("venues")
    @classmethod
    def _unique_venues(cls, value: tuple[VenueEntry, ...]) -> tuple[VenueEntry, ...]:
        names = [v.name for v in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"venue names must be unique: {', '.join(dupes)}")
        return value


def load_extras(**overrides: Any) -> EngineExtras:
    """The settings from the environment, with `overrides` (tests pass their own).

    A bad value is a `ConfigError` naming the variable (and the entry and field inside a JSON list).
    """
    not_json = check_json_variables(os.environ, EngineExtras, ENV_PREFIX)
    if not_json:
        raise ConfigError("invalid configuration: " + "; ".join(not_json))
    try:
        return EngineExtras(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {'; '.join(_problem(e) for e in exc.errors())}") from None
    except SettingsError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None


def _problem(error: Any) -> str:
    """`ALPHATIDE_VENUES[1].colour: Extra inputs are not permitted` (list entries by index)."""
    top, *rest = error["loc"] or ("",)
    where = f"{ENV_PREFIX}{str(top).upper()}" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)
    return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"
