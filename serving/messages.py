"""Wire schemas of the serving tier: the `/signal` body and the `/ws/signals` messages.

`/ws/signals` sends JSON text frames, one message per frame; the `type` field says which schema the frame
follows (one schema per type, `WsMessage` is their union, published in the OpenAPI document through
`GET /ws/signals/schema`):

- ``hello``: first frame after connecting (server time, the message types it will send).
- ``signal``: a scored signal (`SignalMessage`), on every bar close and at most every
  `stream.signal_interval_s` of exchange time per symbol in between.
- ``hot``: the hot-score ranking (`HotMessage`) each time it is recomputed (every minute).
- ``status``: a market-data source connected or lost its connection (`StatusMessage`).
- ``quote``: a market maker's quotes changed (`QuoteMessage`: bid, ask, sizes, inventory, reservation
  price, spread), published by `serving.strategy_feed.StrategyFeed` from the engine's strategies.
- ``window``: a window-market strategy received a new window signal (`WindowMessage`: the window, its
  probability, seconds left, the strategy's position and PnL today), from the same feed.

A client that does not keep up (its queue of `serving.ws_queue_size` messages fills, or one send blocks
longer than `serving.ws_send_timeout_s`) is disconnected with close code 1008; it is never waited for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from serving.stream.hot import HotRanking

Action = Literal["buy", "sell", "hold"]


class Signal(BaseModel):
    """`GET /signal`: the champion's view of one symbol on its newest features."""

    symbol: str
    p_up: float = Field(description="P(close[t+h] >= close[t]) from the champion model")
    action: Action
    model_name: str
    model_version: str
    feature_time: datetime | None = Field(description="Bar close (UTC) of the features scored")
    served_at: datetime
    reason: str
    tower: Literal["tabular", "fused"] = Field("tabular", description="Which tower produced p_up")
    tradeable: bool = Field(
        False, description="False while the champion has not passed the full promotion gate: signals only"
    )


class Unavailable(BaseModel):
    """503 body: the tier cannot give a tradeable answer now; `action` is always hold and `reason` says why."""

    detail: str
    action: Literal["hold"] = "hold"
    reason: str


class HelloMessage(BaseModel):
    type: Literal["hello"] = "hello"
    server_time: datetime
    message_types: list[str]


class SignalMessage(BaseModel):
    type: Literal["signal"] = "signal"
    symbol: str
    p_up: float
    action: Action
    reason: str
    model_version: str
    trigger: Literal["bar_close", "intrabar"]
    feature_time: datetime = Field(description="Exchange time (UTC) the features describe")
    published_at: datetime


class HotMessage(BaseModel):
    type: Literal["hot"] = "hot"
    ranking: HotRanking


class StatusMessage(BaseModel):
    type: Literal["status"] = "status"
    source: str = Field(description="e.g. binance:trades, binance:book")
    connected: bool
    detail: str
    at: datetime


class QuoteMessage(BaseModel):
    type: Literal["quote"] = "quote"
    strategy_id: str
    symbol: str
    bid: str | None = Field(description="Live bid quote price (decimal string), None when not quoting")
    bid_size: str | None
    ask: str | None
    ask_size: str | None
    inventory_clips: float | None = Field(description="Inventory q, in clips of the quote size")
    reservation_price: float | None
    spread: float | None
    quoting: bool
    pulled_reason: str | None = Field(None, description="Why quotes are pulled, when they are")
    at: datetime


class WindowMessage(BaseModel):
    type: Literal["window"] = "window"
    strategy_id: str
    symbol: str = Field(description="The window signal's symbol, e.g. btc-updown-5m")
    window_start: datetime
    window_s: int
    seconds_left: float
    p_up: float = Field(description="P(the window closes >= its open)")
    tradeable: bool
    position_cost: str | None = Field(description="Cost of this window's position (decimal string), None = flat")
    position_shares: dict[str, str] = Field(default_factory=dict, description="Outcome -> shares held")
    pnl_today: str | None
    signal_time: datetime
    published_at: datetime


WsMessage = Annotated[
    HelloMessage | SignalMessage | HotMessage | StatusMessage | QuoteMessage | WindowMessage,
    Field(discriminator="type"),
]
MESSAGE_TYPES = ["hello", "signal", "hot", "status", "quote", "window"]
