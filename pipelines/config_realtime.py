"""Settings of the real-time tier: the market-data stream and the request path (part of `Settings`,
re-exported by `pipelines.config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StreamConfig(_Frozen):
    """The real-time tier's market-data stream (serving.stream): where events come from and how fast.

    ``source``: ``off`` (serve the nightly features only), ``ccxt`` (ccxt.pro WebSocket watchers on
    ``Settings.venue``) or ``replay`` (a local WebSocket server replaying a recorded Binance capture, driven
    through the same ccxt.pro client).
    """

    source: Literal["off", "ccxt", "replay"] = Field("off", description="Where live market events come from.")
    replay_capture_dir: Path | None = Field(
        None, description="Folder of Binance capture files (*.gz, laid out like shared/data/binance_ticks/spot)."
    )
    replay_speed: float = Field(
        1.0, ge=0, le=10_000, description="Replay pace vs recorded time; 0 = as fast as the client reads."
    )
    replay_in_process: bool = Field(
        False, description="Run the replayed venue inside the serving process (default: its own process, "
        "serving.stream.replay_process, as a real venue is; always inside at replay_speed 0)."
    )
    feed_in_process: bool = Field(
        False, description="Run the market feed (ccxt.pro WebSockets, parsing, book sync) on the serving "
        "process's stream thread (default: its own process, serving.stream.feed_process, so its work does not "
        "take turns with the API for the GIL; always on the stream thread at replay_speed 0)."
    )
    symbols: tuple[str, ...] = Field((), description="Symbols to watch; empty = the stored universe.")
    silence_timeout_s: float = Field(
        2.0, gt=0, le=60, description="No message for this long counts as a dead connection (SPEC 14: < 3 s)."
    )
    backoff_initial_s: float = Field(0.1, gt=0, le=10, description="First reconnect delay; doubles per failure.")
    backoff_max_s: float = Field(0.8, gt=0, le=60, description="Reconnect delay ceiling.")
    hot_interval_s: float = Field(60.0, gt=0, le=3600, description="Hot-score recomputation period (SPEC 3).")
    hot_top_n: int = Field(8, ge=1, le=200, description="Symbols the tier works (SPEC 3: top 8).")
    push_to_store: bool = Field(True, description="Push each closed bar's features to the Feast online store.")
    signal_interval_s: float = Field(
        1.0, gt=0, le=3600, description="Intra-bar signals per symbol at most this often (exchange time)."
    )
    # Hot score (SPEC 3): weights of the rank-normalized components and their windows (minutes).
    hot_weight_momentum: float = Field(0.40, ge=0, le=1)
    hot_weight_volume_surge: float = Field(0.25, ge=0, le=1)
    hot_weight_volatility: float = Field(0.15, ge=0, le=1)
    hot_weight_inverse_spread: float = Field(0.10, ge=0, le=1)
    hot_weight_order_flow: float = Field(0.05, ge=0, le=1)
    hot_weight_regime_match: float = Field(0.05, ge=0, le=1)
    hot_momentum_min: int = Field(20, ge=1, le=1440, description="momentum_20m window.")
    hot_volatility_min: int = Field(20, ge=2, le=1440, description="volatility_20m window.")
    hot_surge_short_min: int = Field(5, ge=1, le=1440, description="volume_surge numerator window.")
    hot_surge_long_min: int = Field(60, ge=2, le=1440, description="volume_surge denominator window.")
    hot_order_flow_min: int = Field(10, ge=1, le=1440, description="order_flow_10m window.")
    hot_trending_hurst: float = Field(
        0.58, gt=0, lt=1, description="regime_match: Hurst above this is a trending market (SPEC 10 band top)."
    )

    @property
    def feed_in_own_process(self) -> bool:
        """Whether the market feed runs in `serving.stream.feed_process` (see `feed_in_process`)."""
        return not self.feed_in_process and not (self.source == "replay" and self.replay_speed == 0)

    @field_validator("replay_capture_dir")
    @classmethod
    def _absolute_dir(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @model_validator(mode="after")
    def _replay_needs_capture(self) -> StreamConfig:
        if self.source == "replay" and (self.replay_capture_dir is None or not self.replay_capture_dir.is_dir()):
            raise ValueError(
                "ALPHATIDE_STREAM__SOURCE=replay needs ALPHATIDE_STREAM__REPLAY_CAPTURE_DIR, an existing folder "
                f"of Binance capture files (got {self.replay_capture_dir})"
            )
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("stream.backoff_initial_s must not exceed stream.backoff_max_s")
        if self.hot_surge_short_min >= self.hot_surge_long_min:
            raise ValueError("stream.hot_surge_short_min must be below stream.hot_surge_long_min")
        weights = (
            self.hot_weight_momentum, self.hot_weight_volume_surge, self.hot_weight_volatility,
            self.hot_weight_inverse_spread, self.hot_weight_order_flow, self.hot_weight_regime_match,
        )
        if abs(sum(weights) - 1.0) > 1e-9:
            raise ValueError(f"the stream.hot_weight_* must sum to 1 (they sum to {sum(weights)})")
        return self


class ServingConfig(_Frozen):
    """The request path: the in-process latest-features cache and the WebSocket fan-out."""

    # Both checks cost milliseconds of interpreter time on a background thread (the GIL): rare enough not to
    # show in /signal's p99, frequent enough to notice a nightly change or an outage within seconds.
    cache_refresh_s: float = Field(
        10.0, gt=0, le=3600, description="Cached store rows older than this are re-read in the background."
    )
    model_check_s: float = Field(30.0, gt=0, le=3600, description="How often the registry's champion alias is read.")
    gil_switch_interval_s: float = Field(
        0.001, gt=0, le=0.1, description="sys.setswitchinterval of the serving process: background threads "
        "hand the interpreter back to the event loop at least this often (Python's default is 0.005)."
    )
    gc_freeze: bool = Field(
        True, description="Freeze the heap built at startup out of the garbage collector's passes "
        "(serving.gc_tuning: full collections of it held the GIL for up to 400 ms)."
    )
    gc_threshold0: int = Field(
        700, ge=100, le=1_000_000, description="gc generation-0 threshold once the startup heap is frozen."
    )
    lean_imports: bool = Field(
        True, description="The serving entry points import catboost without pandas/pyarrow and ccxt's exchanges "
        "on demand (serving.lean_imports: about 100 MB less RSS)."
    )
    ws_queue_size: int = Field(256, ge=1, le=100_000, description="Messages queued per WebSocket client.")
    ws_send_timeout_s: float = Field(2.0, gt=0, le=60, description="A send blocked longer drops the client.")
    confidence_window: int = Field(500, ge=1, le=1_000_000, description="Signals in the rolling mean confidence.")
