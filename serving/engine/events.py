"""What the stream feeds the trading engine (the producer side of the interface).

All times are timezone-aware UTC; prices and sizes are `Decimal`; model outputs and features are floats
(fractions, not percentages). Optional features are `None` when the producer does not have them: the
rule that needs them is then skipped, never fed a zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pipelines.trading.instruments import Side


@dataclass(frozen=True)
class SignalEvent:
    """A scored signal for one symbol.

    p_up: calibrated P(close[t+h] >= close[t]) from the champion. vpin in [0, 1]; kyle_lambda with
    `kyle_lambda_threshold` = its trailing 80th percentile; hurst in [0, 1]; spread = (ask-bid)/mid and
    `spread_norm` its trailing norm; volume / volume_norm in the same unit (e.g. quote volume per 5 min);
    volatility = return std over the holding horizon; expected_return = the model's expected remaining
    return of a long (for the EV trail). new_listing: tier 3 of the universe (size x0.3, 120 s max hold).
    tradeable: False while the serving model has not passed the full promotion gate (e.g. the bootstrap
    champion): the signal is published but no strategy opens a position on it.
    kind: "directional" (a tradable market's P(up), the directional strategy's input) or "window"
    (a window market's P(close >= open), e.g. "btc-updown-5m": only the window strategies read it).
    """

    symbol: str
    p_up: float
    ts: datetime
    vpin: float | None = None
    kyle_lambda: float | None = None
    kyle_lambda_threshold: float | None = None
    hurst: float | None = None
    spread: float | None = None
    spread_norm: float | None = None
    volume: float | None = None
    volume_norm: float | None = None
    volatility: float | None = None
    expected_return: float | None = None
    new_listing: bool = False
    tradeable: bool = True
    avg_win: float | None = None  # additive: the producer's payoff statistics (mean win / loss magnitude)
    avg_loss: float | None = None  # of the horizon; absent, the strategy uses its closed trades or exit levels
    kind: Literal["directional", "window"] = "directional"


@dataclass(frozen=True)
class TradeEvent:
    """A public trade print (drives paper fills, marks and exits)."""

    symbol: str
    price: Decimal
    size: Decimal
    ts: datetime
    aggressor: Side | None = None
    venue: str = ""  # which broker's market ("" = the engine's default venue)


@dataclass(frozen=True)
class BookEvent:
    """The best bid/ask with sizes (order prices come from here; older than 3 s is not used)."""

    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    ts: datetime
    venue: str = ""  # which broker's market ("" = the engine's default venue)


@dataclass(frozen=True)
class HealthEvent:
    """Measurements the serving tier owns, for the kill switches that read them (None = unknown).

    calibration_error: live ECE; drift_p_value: smallest KS p-value of live vs training features;
    inference_p99_ms: scorer p99; memory_bytes: process RSS; live_pnl / simulated_pnl: the same period
    live and in the paper replay (quote currency).
    """

    calibration_error: float | None = None
    drift_p_value: float | None = None
    inference_p99_ms: float | None = None
    memory_bytes: int | None = None
    live_pnl: Decimal | None = None
    simulated_pnl: Decimal | None = None


EngineEvent = SignalEvent | TradeEvent | BookEvent | HealthEvent


class ReplayClock:
    """A clock that follows the events' own timestamps (for replays of recorded data).

    Pass it as `clock=` to `build_engine`; the engine advances it to each event's `ts` before handling
    the event (it never goes backwards), so TTLs, pauses and book ages run on market time.
    """

    def __init__(self, start: datetime) -> None:
        self.now = start

    def observe(self, ts: datetime) -> None:
        if ts > self.now:
            self.now = ts

    def __call__(self) -> datetime:
        return self.now
