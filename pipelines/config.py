"""The one configuration object of alphatide.

Read from the environment (prefix `ALPHATIDE_`, nested fields with `__`, e.g.
`ALPHATIDE_MODEL__ITERATIONS=300`), validated once, frozen. An `ALPHATIDE_*` variable that names no
field is an error, so a typo cannot silently leave a default in force.

The sections live in sibling modules (`config_sections`: universe, data, validation, model, backtest,
drift, promotion, signal; `config_engine`: engine; `config_realtime`, `config_leader`, ...); every
section model is re-exported here, so `from pipelines.config import ...` is the one import path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from pipelines.config_checks import check_json_variables, check_uri, mask_uri
from pipelines.config_engine import EngineConfig, _secret_set
from pipelines.config_realtime import ServingConfig, StreamConfig
from pipelines.config_sections import (
    BacktestConfig,
    DataConfig,
    DriftConfig,
    ModelConfig,
    PromotionConfig,
    SignalConfig,
    Timeframe,
    UniverseConfig,
    ValidationConfig,
)
from pipelines.errors import ConfigError
from pipelines.realtime_config import RealtimeConfig
from pipelines.research_config import ResearchConfig

__all__ = [
    "BacktestConfig",
    "DataConfig",
    "DriftConfig",
    "EngineConfig",
    "ModelConfig",
    "PromotionConfig",
    "ServingConfig",
    "Settings",
    "SignalConfig",
    "StreamConfig",
    "Timeframe",
    "UniverseConfig",
    "ValidationConfig",
    "load_settings",
    "mask_uri",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENV_PREFIX = "ALPHATIDE_"

SourceName = Literal["auto", "binance", "replay", "synthetic"]


class Settings(BaseSettings):
    """Every setting of alphatide; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="forbid", case_sensitive=False
    )

    source: SourceName = "auto"
    replay_dir: Path | None = None
    home: Path = PROJECT_ROOT
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    venue: str = "binance"
    feature_service: str = "signal_v1"
    feast_project: str = Field("alphatide", pattern=r"^[A-Za-z0-9_]+$", description="Feast project (namespace).")
    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: SecretStr | None = Field(
        None, description="Redis for the online store, e.g. redis://:password@127.0.0.1:6379/0 (a secret)."
    )
    mlflow_uri: str | None = Field(
        None, description="MLflow tracking/registry URI; default SQLite under home."
    )
    nightly_schedule: str = Field(
        "@daily", pattern=r"^(none|@[a-z]+|\S+( \S+){4})$",
        description="alphatide_universe's clock (a preset or a cron); `none`: the chain runs when triggered.",
    )
    universe: UniverseConfig = UniverseConfig()
    data: DataConfig = DataConfig()
    validation: ValidationConfig = ValidationConfig()
    model: ModelConfig = ModelConfig()
    promotion: PromotionConfig = PromotionConfig()
    backtest: BacktestConfig = BacktestConfig()
    drift: DriftConfig = DriftConfig()
    signal: SignalConfig = SignalConfig()
    engine: EngineConfig = EngineConfig()
    stream: StreamConfig = StreamConfig()
    serving: ServingConfig = ServingConfig()
    realtime: RealtimeConfig = RealtimeConfig()  # serving tier: warm-up, norms, freshness, WS lag
    research: ResearchConfig = ResearchConfig()  # labels, baseline, served tower, few-trades gate
    api_key: SecretStr | None = Field(
        None, description="Key for POST /kill and /resume (X-API-Key); unset = those endpoints refuse (503)."
    )

    @field_validator("home", "replay_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("mlflow_uri")
    @classmethod
    def _mlflow_uri_is_a_uri(cls, value: str | None) -> str | None:
        return check_uri(value, "mlflow", "ALPHATIDE_MLFLOW_URI") if value is not None else None

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_a_uri(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_uri(value.get_secret_value(), "redis", "ALPHATIDE_REDIS_URL")
        return value

    @field_serializer("mlflow_uri")
    def _mask_mlflow_uri(self, value: str | None) -> str | None:
        return mask_uri(value)  # credentials of a tracking server never reach `alphatide settings`

    @model_validator(mode="after")
    def _redis_needs_url(self) -> Settings:
        if self.online_store == "redis" and self.redis_url is None:
            raise ValueError("ALPHATIDE_ONLINE_STORE=redis needs ALPHATIDE_REDIS_URL (redis://host:port/db)")
        return self

    @model_validator(mode="after")
    def _replay_needs_dir(self) -> Settings:
        if self.source == "replay":
            if self.replay_dir is None:
                raise ValueError(
                    "ALPHATIDE_SOURCE=replay needs ALPHATIDE_REPLAY_DIR (a folder of candle files)"
                )
            if not self.replay_dir.is_dir():
                raise ValueError(f"ALPHATIDE_REPLAY_DIR={self.replay_dir} is not a folder")
        return self

    # Derived locations: one place decides the layout under `home`.
    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    @property
    def mlruns_dir(self) -> Path:
        return self.home / "mlruns"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{self.mlruns_dir / 'mlflow.db'}"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast_data"

    @property
    def feature_repo_dir(self) -> Path:
        return PROJECT_ROOT / "feature_repo"

    @property
    def dags_dir(self) -> Path:
        return PROJECT_ROOT / "dags"


# Sections other frozen settings models read with the same prefix (serving.engine.config.EngineExtras,
# serving.engine.telegram.AlertSettings, serving.engine.venues, pipelines.cluster.config.ClusterConfig):
# known variables, not typos.
OTHER_SECTIONS = frozenset({"STRATEGIES", "VENUES", "HEALTH", "AIRFLOW", "TELEGRAM", "ALERTS", "CLUSTER"})
# ALPHATIDE_VENUE_<NAME>__API_KEY etc.: the secrets of each venue of ALPHATIDE_VENUES (serving.engine.venues).
VENUE_SECRET_PREFIX = "VENUE_"


def _unknown_variables(environ: dict[str, str]) -> list[str]:
    known = {name.upper() for name in Settings.model_fields} | OTHER_SECTIONS
    unknown = []
    for key in environ:
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        top = upper[len(ENV_PREFIX) :].split("__", 1)[0]
        if top not in known and not (top.startswith(VENUE_SECRET_PREFIX) and "__" in upper):
            unknown.append(key)
    return sorted(unknown)


def check_live_start(settings: Settings) -> None:
    """What the serving tier needs before it trades live (called by `alphatide serve`/`run` at start).

    The venue keys are checked with the settings themselves (`EngineConfig`); the API key here, since
    without it `POST /kill` cannot be called: a live engine nobody can stop refuses to start.
    """
    if settings.engine.enabled and settings.engine.mode == "live" and not _secret_set(settings.api_key):
        raise ConfigError(
            "ALPHATIDE_ENGINE__MODE=live refuses to start without ALPHATIDE_API_KEY (unset or empty): "
            "without it POST /kill cannot be called"
        )


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    """One readable line: the variable, then pydantic's message (which may name the variable itself)."""
    message = message.removeprefix("Value error, ")
    name = f"{ENV_PREFIX}{'__'.join(str(p) for p in loc).upper()}"
    return message if not loc or message.startswith(name) else f"{name}: {message}"


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build and validate the settings once.

    `environ` defaults to `os.environ`; `overrides` win over the environment (used by tests and the CLI).
    Raises `ConfigError` naming every bad or unknown variable.
    """
    env = dict(os.environ if environ is None else environ)
    unknown = _unknown_variables(env)
    if unknown:
        raise ConfigError(f"unknown configuration variable(s): {', '.join(unknown)}")
    not_json = check_json_variables(env, Settings, ENV_PREFIX)
    if not_json:
        raise ConfigError("invalid configuration: " + "; ".join(not_json))
    saved = os.environ.copy()
    try:
        # pydantic-settings reads os.environ; swap it in so an explicit `environ` is what counts.
        if environ is not None:
            os.environ.clear()
            os.environ.update(env)
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], str(err["msg"])) for err in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    except SettingsError as exc:  # a value pydantic-settings could not even parse
        raise ConfigError(f"invalid configuration: {exc}") from None
    finally:
        if environ is not None:
            os.environ.clear()
            os.environ.update(saved)
