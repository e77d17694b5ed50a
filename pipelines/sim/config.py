"""Typed, validated settings of one simulated venue, and the one place a `SimMarket` is built from them.

`SimVenueConfig` is meant to be nested in the application's settings (one per venue of a backtest, e.g.
`alphatide backtest --venue binanceusdm ...`); every number here is a default, none is a literal in code.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines.sim.feed import Feed
from pipelines.sim.fees import FeeSchedule
from pipelines.sim.latency import ConstantLatency, LatencyModel, OrderLatencyTable
from pipelines.sim.market import SimMarket
from pipelines.sim.queue import queue_model

DEFAULT_MAKER_FEE = 0.0
DEFAULT_TAKER_FEE = 0.0004


class SimVenueConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    venue: str = Field(default="", description="broker name; '' = the feed's venue (binance, binanceusdm)")
    queue: str = Field(default="risk_averse", description="risk_averse | power:N | power2:N | log | log2")
    latency: Literal["constant", "feed"] = Field(
        default="constant", description="constant entry/response, or replayed from the capture's feed latency"
    )
    entry_ms: float = Field(default=10.0, ge=0.0, description="order entry latency (constant)")
    response_ms: float = Field(default=10.0, ge=0.0, description="exchange answer latency (constant)")
    jitter_ms: float = Field(default=0.0, ge=0.0, description="uniform extra latency per message (constant)")
    feed_latency_multiplier: float = Field(default=1.0, gt=0.0, description="order latency = feed latency x this")
    # Fees (None: the venue's cached `load_markets` row in the lake, else DEFAULT_MAKER_FEE / DEFAULT_TAKER_FEE).
    maker_fee: float | None = Field(default=None, gt=-0.01, lt=0.01, description="fraction of notional; < 0 = rebate")
    taker_fee: float | None = Field(default=None, gt=-0.01, lt=0.01, description="fraction of notional")
    seed: int = Field(default=0, description="seeds the latency jitter: the same seed gives the same fills")
    # Instrument rules of the replayed market (None: the venue's cached `load_markets` row in the lake, see
    # `serving.backtest.instruments`; tick and lot are inferred from the data when neither has them).
    tick_size: Decimal | None = Field(default=None, gt=0, description="price step (quote)")
    lot_size: Decimal | None = Field(default=None, gt=0, description="size step (base)")
    min_notional: Decimal | None = Field(default=None, ge=0, description="smallest order notional (quote)")
    min_size: Decimal | None = Field(default=None, ge=0, description="smallest order size (base)")

    @field_validator("queue")
    @classmethod
    def _known_queue(cls, value: str) -> str:
        queue_model(value)  # raises ValueError naming the choices
        return value

    def latency_model(self, feed: Feed) -> LatencyModel:
        if self.latency == "feed":
            return OrderLatencyTable.from_feed(feed.exch_ts, feed.feed_latency_ns(),
                                               multiplier=self.feed_latency_multiplier)
        return ConstantLatency(int(self.entry_ms * 1e6), int(self.response_ms * 1e6), int(self.jitter_ms * 1e6),
                               self.seed)

    def fees(self) -> FeeSchedule:
        """The configured fees; an unset one is the module default (maker 0, taker 4 bp)."""
        maker = DEFAULT_MAKER_FEE if self.maker_fee is None else self.maker_fee
        return FeeSchedule(maker, DEFAULT_TAKER_FEE if self.taker_fee is None else self.taker_fee)

    def build(self, feed: Feed) -> SimMarket:
        market = SimMarket(feed, queue_model(self.queue, float(feed.lot_size)), self.latency_model(feed),
                           self.fees(), venue=self.venue or None)
        market.min_notional = self.min_notional or Decimal(0)
        market.min_size = self.min_size or Decimal(0)
        return market
