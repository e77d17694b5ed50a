"""Sections of `pipelines.config.Settings` the nightly chain and the signal read: universe, data,
validation, model, backtest, drift, promotion, signal (``ALPHATIDE_<SECTION>__<FIELD>``).

Frozen pydantic models, unknown keys rejected. `pipelines.config` re-exports every name here: import
them from there.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
