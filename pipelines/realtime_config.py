"""Settings of the real-time serving tier's own concerns (`ALPHATIDE_REALTIME__*`).

Kept apart from `pipelines.config` (one field there, `realtime`, points here) so the stream's knobs
live beside each other: warming the incremental features before the first score, the trailing
statistics behind the `SignalEvent` norms, market-data freshness for `/health`, and the WebSocket lag
limit.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RealtimeConfig(BaseModel):
    """Defaults follow SPEC 5/9/10/14; every one is configurable (``ALPHATIDE_REALTIME__<FIELD>``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    warm_bars: int = Field(
        200, ge=0, le=5000, description="Closed bars per symbol fed to the incremental features before the "
        "first score (the longest window is 128 bars for Hurst); 0 = no warm-up."
    )
    warm_from_venue: bool = Field(
        True, description="Live (stream.source=ccxt): fetch the recent candles the lake lacks from the venue."
    )
    warm_max_gap_s: float | None = Field(
        None, gt=0, description="Ignore warm bars that end more than this before the stream starts "
        "(None = use the newest bars whatever their age, with a warning when they are not contiguous)."
    )
    norm_bars: int = Field(20, ge=2, le=10_000, description="Trailing bars behind volume_norm and volatility.")
    payoff_bars: int = Field(
        288, ge=10, le=100_000, description="Trailing bars behind the average win/loss of expected_return."
    )
    spread_norm_halflife_s: float = Field(
        1800.0, gt=0, le=86_400, description="Half-life of the trailing spread mean (spread_norm)."
    )
    spread_norm_min_s: float = Field(
        60.0, ge=0, le=86_400, description="Spread observed this long before spread_norm is reported."
    )
    kyle_percentile: float = Field(
        80.0, gt=0, lt=100, description="kyle_lambda_threshold = this percentile of the trailing lambdas (SPEC 9)."
    )
    kyle_history_bars: int = Field(288, ge=5, le=100_000, description="Trailing bars of Kyle's lambda kept.")
    health_max_data_age_s: float = Field(
        30.0, gt=0, le=86_400, description="/health is degraded when no trade or book update arrived for this long."
    )
    ws_max_lag_s: float = Field(
        5.0, gt=0, le=3600, description="A /ws/signals client whose oldest unsent message is older is dropped (1008)."
    )
