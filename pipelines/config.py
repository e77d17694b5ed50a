"""The one configuration object of alphatide.

Read from the environment (prefix `ALPHATIDE_`, nested fields with `__`, e.g.
`ALPHATIDE_MODEL__ITERATIONS=300`), validated once, frozen. An `ALPHATIDE_*` variable that names no
field is an error, so a typo cannot silently leave a default in force.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
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
from pipelines.config_leader import LeaderConfig
from pipelines.config_realtime import ServingConfig, StreamConfig
from pipelines.errors import ConfigError
from pipelines.realtime_config import RealtimeConfig
from pipelines.research_config import ResearchConfig
from pipelines.trading.config import TradingConfig

__all__ = ["ServingConfig", "Settings", "StreamConfig", "load_settings", "mask_uri"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENV_PREFIX = "ALPHATIDE_"

SourceName = Literal["auto", "binance", "replay", "synthetic"]
Timeframe = Literal["1m", "5m", "1h"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UniverseConfig(_Frozen):
    """Universe selection (nightly, point in time)."""

    quote: str = "USDT"
    majors: tuple[str, ...] = ("BTC", "ETH", "SOL", "XRP")
    size: int = Field(12, ge=1, le=200, description="Tier 2: the top `size` by score besides the majors.")
    lookback_days: int = Field(30, ge=1, le=365)
    # Average daily quote volume floor per quote currency. 5e9 KRW is the SPEC's Upbit figure; 5e6 USDT is
    # its equivalent (5e9 KRW ~ 3.7e6 USD in 2024, rounded up to reject the thinnest Binance pairs).
    min_quote_volume: dict[str, float] = Field(default_factory=lambda: {"USDT": 5e6, "KRW": 5e9})
    min_daily_volatility: float = Field(0.008, ge=0, lt=1, description="Std of daily returns, lower bound.")
    max_daily_volatility: float = Field(0.035, gt=0, le=5, description="Std of daily returns, upper bound.")
    max_spread: float = Field(0.0015, gt=0, lt=1, description="Average relative spread (0.0015 = 0.15%).")
    min_listing_days: int = Field(30, ge=1, le=3650)
    min_daily_trades: int = Field(50_000, ge=0, description="Average trades a day, where trade counts exist.")
    stats_timeframe: Timeframe = Field("5m", description="Bars the daily statistics (and spread estimate) use.")
    weight_momentum: float = Field(0.5, ge=0, le=1)
    weight_sharpe: float = Field(0.3, ge=0, le=1)
    weight_liquidity: float = Field(0.2, ge=0, le=1)
    new_listing_max: int = Field(3, ge=0, le=50, description="Tier 3 holds at most this many new listings.")
    new_listing_days: int = Field(7, ge=1, le=30, description="Window of the new-listing volume test.")
    # 7-day average daily quote volume a new listing needs, per quote currency.
    new_listing_min_quote_volume: dict[str, float] = Field(default_factory=lambda: {"USDT": 2e7, "KRW": 2e10})

    @model_validator(mode="after")
    def _consistent(self) -> UniverseConfig:
        if self.min_daily_volatility >= self.max_daily_volatility:
            raise ValueError("min_daily_volatility must be below max_daily_volatility")
        for name in ("min_quote_volume", "new_listing_min_quote_volume"):
            table: dict[str, float] = getattr(self, name)
            if self.quote not in table:
                raise ValueError(f"{name} has no figure for quote {self.quote!r} (has {sorted(table)})")
            if any(v < 0 for v in table.values()):
                raise ValueError(f"{name} figures must be >= 0")
        if abs(self.weight_momentum + self.weight_sharpe + self.weight_liquidity - 1.0) > 1e-9:
            raise ValueError("weight_momentum + weight_sharpe + weight_liquidity must be 1")
        return self


class DataConfig(_Frozen):
    """What history the nightly chain loads."""

    timeframe: Timeframe = "5m"
    history_days: int = Field(60, ge=2, le=3650, description="Days of bars backfilled before the as-of date.")
    synthetic_symbols: int = Field(8, ge=1, le=200)
    synthetic_seed: int = 7
    probe_timeout_s: float = Field(4.0, gt=0, le=60, description="How long `auto` waits for Binance.")
    request_timeout_s: float = Field(10.0, gt=0, le=300, description="ccxt request timeout.")
    max_retries: int = Field(5, ge=0, le=20, description="Retries of a venue call on rate limits/network errors.")
    backoff_s: float = Field(1.0, gt=0, le=60, description="First backoff; doubles on each retry.")
    max_backoff_s: float = Field(60.0, gt=0, le=3600, description="Backoff ceiling.")
    candle_chunk_days: int = Field(1, ge=1, le=365, description="Backfill unit (and watermark step) for candles.")
    trades_window_s: int = Field(3600, ge=60, le=86_400, description="Backfill unit for trades (Binance: 1 h max).")
    book_depth: int = Field(20, ge=1, le=5000, description="Levels per side kept in an order-book snapshot.")
    markets_ttl_h: float = Field(24.0, gt=0, le=24 * 30, description="Market metadata cache lifetime.")
    outage_share: float = Field(
        0.8, gt=0.5, le=1, description="A bar missing in at least this share of listed symbols is a venue outage."
    )
    outage_edge_bars: int = Field(
        2, ge=0, le=60, description="Bars either side of a venue outage that still belong to it (ragged edge)."
    )


class ValidationConfig(_Frozen):
    """Data-validation gate (SPEC section 4)."""

    max_spread_pct: float = Field(0.05, gt=0, le=1)
    # A bar fails when |log return| > jump_sigmas x std of the previous jump_window_bars log returns AND its
    # volume < jump_volume_fraction x their mean volume (a move nobody traded). 0 findings on the 2024 sample.
    jump_sigmas: float = Field(10.0, gt=0, le=1000, description="Jump size limit, in recent sigmas.")
    jump_window_bars: int = Field(288, ge=10, le=100_000, description="Bars of recent volatility and volume.")
    jump_volume_fraction: float = Field(0.01, ge=0, le=1, description="'Without volume': below this share.")


class ModelConfig(_Frozen):
    """Tabular tower defaults (SPEC section 7) and the label horizon (section 6)."""

    name: str = "alphatide-direction"
    horizon_bars: int = Field(1, ge=1, le=288)
    iterations: int = Field(500, ge=10, le=5000)
    learning_rate: float = Field(0.08, gt=0, le=1)
    depth: int = Field(6, ge=1, le=12)
    l2_leaf_reg: float = Field(5.0, ge=0)
    rsm: float = Field(0.85, gt=0, le=1)
    test_fraction: float = Field(0.2, gt=0.05, lt=0.5)
    max_train_rows: int = Field(
        200_000, ge=1000, description="Most recent rows kept for training, per walk-forward fold."
    )
    seed: int = 42
    # Walk-forward retraining (SPEC 8). Spans shrink with a logged note when the history is shorter.
    train_months: int = Field(6, ge=1, le=60, description="Trailing training window, months of 30 days.")
    test_days: float = Field(7.0, gt=0, le=90, description="Test window per fold (and the step), days.")
    folds: int = Field(4, ge=1, le=52, description="Walk-forward folds (the most recent test windows).")
    expanding: bool = Field(False, description="Expanding instead of sliding training windows.")
    embargo_bars: int | None = Field(
        None, ge=1, le=2016, description="Bars between train and test; None = the label horizon."
    )
    max_test_share: float = Field(
        0.3, gt=0.05, lt=0.9, description="Most of a short history the test windows may take together."
    )
    min_train_days: float = Field(2.0, gt=0, le=365, description="Shortest training window of a fold.")
    calibration_share: float = Field(
        0.15, gt=0.02, lt=0.5, description="Latest share of each fold's training window held back for calibration."
    )
    optuna_trials: int = Field(4, ge=0, le=1000, description="Optuna trials; 0 uses the fixed defaults.")
    optuna_timeout_s: float = Field(60.0, gt=0, le=86_400, description="Wall-clock cap of the search.")
    optuna_cv_folds: int = Field(3, ge=2, le=10, description="Expanding time-series CV folds per trial.")
    tune_max_rows: int = Field(60_000, ge=1000, description="Most recent rows the search trains on.")
    shuffled_control: bool = Field(True, description="Also fit a shuffled-label control and log its AUC.")
    sequence_tower: bool = Field(
        True, description="Fit the sequence tower and fusion on the last fold (evaluated and logged, not served)."
    )
    sequence_max_windows: int = Field(
        2000, ge=16, le=1_000_000, description="Training windows of the sequence tower (cost is linear in it)."
    )
    sequence_epochs: int = Field(1, ge=1, le=100, description="Passes of the sequence tower over its windows.")

    @model_validator(mode="after")
    def _embargo_covers_horizon(self) -> ModelConfig:
        if self.embargo_bars is not None and self.embargo_bars < self.horizon_bars:
            raise ValueError(
                f"embargo_bars {self.embargo_bars} < horizon_bars {self.horizon_bars}: labels would leak"
            )
        return self

    @property
    def embargo(self) -> int:
        """Embargo in bars: at least the label horizon (SPEC 6)."""
        return self.embargo_bars if self.embargo_bars is not None else self.horizon_bars


class BacktestConfig(_Frozen):
    """The fee-aware bar-level backtest of the evaluation (sizing and exits come from TradingConfig)."""

    fee_per_side: float = Field(0.001, ge=0, lt=0.05, description="Taker fee per side, fraction of notional.")
    slippage_per_side: float = Field(0.0002, ge=0, lt=0.05, description="Adverse price move per fill.")
    spread: float = Field(0.0005, ge=0, lt=0.05, description="Assumed (ask-bid)/mid when candles have no book.")
    initial_equity: Decimal = Field(Decimal(10_000), gt=0, description="Quote currency.")
    payoff_lookback_bars: int = Field(288, ge=10, description="Trailing bars for avg win/loss and volatility.")
    baseline_seed: int = 7


class DriftConfig(_Frozen):
    """Feature drift check (SPEC 8): KS test of recent feature distributions against training."""

    p_value: float = Field(0.01, gt=0, lt=1, description="A KS p-value below this flags a feature.")
    recent_days: float = Field(1.0, gt=0, le=60, description="The recent window compared with training.")
    max_rows: int = Field(50_000, ge=100, description="Rows sampled per side per feature.")


class PromotionConfig(_Frozen):
    """Promotion gate (SPEC section 8)."""

    max_brier_worsening: float = Field(
        0.0, ge=0, description="Challenger Brier may exceed champion's by this."
    )
    max_ece: float = Field(0.05, gt=0, le=1)
    leakage_accuracy: float = Field(0.60, gt=0.5, le=1)
    bootstrap_without_champion: bool = Field(
        True,
        description="With no champion yet, a challenger that passes validation and leakage checks serves.",
    )


class SignalConfig(_Frozen):
    """How a probability becomes an action."""

    buy_threshold: float = Field(0.55, gt=0.5, lt=1)
    sell_threshold: float = Field(0.45, gt=0, lt=0.5)
    max_feature_age_s: float | None = Field(
        None, gt=0, description="Features older than this give `hold`; None trusts the newest stored bar."
    )


class EngineConfig(_Frozen):
    """The trading runtime (serving.engine): broker, persistence, timers. Paper mode is the default.

    The trading rules themselves (SPEC 9-11 numbers) are `trading`; secrets have no defaults and are
    required only in live mode.
    """

    enabled: bool = Field(True, description="Start the trading engine with the serving tier.")
    mode: Literal["paper", "live"] = Field("paper", description="paper sends nothing to any venue.")
    venue: str = Field("binance", pattern=r"^[a-z0-9_]+$", description="ccxt exchange id the engine trades on.")
    api_url: str | None = Field(
        None, pattern=r"^https?://", description="Override of the venue's REST base URL (a local fake in tests)."
    )
    ws_url: str | None = Field(
        None, pattern=r"^wss?://", description="Override of the venue's private WebSocket URL (a local fake in tests)."
    )
    order_stream: bool = Field(
        False, description="Live: order updates from the venue's WebSocket at every tick; the REST poll stays."
    )
    venue_api_key: SecretStr | None = Field(None, description="Venue API key (live mode only).")
    venue_api_secret: SecretStr | None = Field(None, description="Venue API secret (live mode only).")
    dsn: SecretStr | None = Field(
        None, description="postgresql://... for PostgreSQL persistence; unset = SQLite under home/trading/."
    )
    pause_file: Path | None = Field(None, description="Its presence stops new entries; default home/trading/PAUSE.")
    reconcile_interval_s: float = Field(180.0, ge=5, le=3600, description="Positions/balances vs the venue.")
    sweep_interval_s: float = Field(5.0, gt=0, le=600, description="Order updates, stale-order sweep, risk.")
    tick_interval_s: float = Field(0.25, gt=0, le=10, description="Worker wake-up when no event arrives.")
    api_error_window_s: float = Field(300.0, gt=0, le=86_400, description="Window of the API error rate.")
    store_error_window_s: float = Field(900.0, gt=0, le=86_400, description="Window of the store error count.")
    paper_starting_balance: Decimal = Field(Decimal(10_000), gt=0, description="Paper account, quote currency.")
    paper_starting_assets: dict[str, Decimal] = Field(
        default_factory=dict, description='Paper account, other assets at start, e.g. {"BTC": "0.08"}: the '
        "base a spot market maker holds as its target inventory.",
    )
    expected_slippage: float = Field(0.0002, ge=0, lt=0.05, description="Round trip, fraction, for E.")
    stats_min_trades: int = Field(20, ge=1, description="Closed trades before avg win/loss come from history.")
    max_queue: int = Field(100_000, ge=100, description="Pending stream events; beyond it new ones are dropped.")
    request_retries: int = Field(3, ge=0, le=10, description="Retries of a venue call on 429/418/network errors.")
    backoff_s: float = Field(0.5, gt=0, le=60, description="First backoff after a venue error; doubles.")
    alert_webhook_url: SecretStr | None = Field(
        None, description="POST each alert as JSON here (e.g. a Telegram bot relay); it may embed a token."
    )
    correlation_sample_s: float = Field(60.0, gt=0, le=3600, description="Mid-price sampling for correlations.")
    correlation_window: int = Field(120, ge=10, le=10_000, description="Samples kept per symbol.")
    correlation_min_samples: int = Field(20, ge=3, description="Common returns needed before correlating.")
    paper_trades_ungated_model: bool = Field(
        False,
        description="Paper only: also trade a champion that has not passed the full promotion gate (a demo or "
        "a dry run of a bootstrap model); refused in live mode.",
    )
    trading: TradingConfig = TradingConfig()
    leader: LeaderConfig = LeaderConfig()  # serving replicas: one active engine (pipelines.config_leader)

    @field_validator("dsn")
    @classmethod
    def _dsn_is_a_uri(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_uri(value.get_secret_value(), "dsn", "ALPHATIDE_ENGINE__DSN")
        return value

    @model_validator(mode="after")
    def _leader_needs_postgres(self) -> EngineConfig:
        self.leader.check(self.dsn)
        return self

    @model_validator(mode="after")
    def _live_needs_keys(self) -> EngineConfig:
        if self.mode != "live":
            return self
        if self.paper_trades_ungated_model:
            raise ValueError(
                "ALPHATIDE_ENGINE__PAPER_TRADES_UNGATED_MODEL=true is for paper mode only: live trading waits for "
                "a model that passed the whole promotion gate"
            )
        missing = [
            f"ALPHATIDE_ENGINE__{name.upper()}"
            for name in ("venue_api_key", "venue_api_secret")
            if not _secret_set(getattr(self, name))
        ]
        if missing:
            raise ValueError(
                f"ALPHATIDE_ENGINE__MODE=live refuses to start without venue keys: {', '.join(missing)} "
                "unset or empty (set them, or use ALPHATIDE_ENGINE__MODE=paper)"
            )
        return self


def _secret_set(value: SecretStr | None) -> bool:
    """An empty or blank secret counts as missing."""
    return value is not None and bool(value.get_secret_value().strip())


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
