"""``ALPHATIDE_ENGINE__*``: the trading runtime's section of `pipelines.config.Settings`.

Frozen pydantic model, unknown keys rejected; the venue keys are required in live mode only.
`pipelines.config` re-exports `EngineConfig`: import it from there.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from pipelines.config_checks import check_uri
from pipelines.config_leader import LeaderConfig
from pipelines.config_sections import _Frozen
from pipelines.trading.config import TradingConfig


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
