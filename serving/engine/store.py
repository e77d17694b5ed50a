"""Backward-compatible home of the trading store: see `serving.engine.persistence.store`."""

from serving.engine.persistence.schema import (
    DEFAULT_STRATEGY,
    AlertRecord,
    ClosedTrade,
    PositionRecord,
    StoredOrder,
    StoreError,
    iso,
    parse_ts,
    sqlalchemy_url,
)
from serving.engine.persistence.store import TradingStore
from serving.engine.persistence.window_pnl import WindowSettlement

__all__ = [
    "DEFAULT_STRATEGY",
    "AlertRecord",
    "ClosedTrade",
    "PositionRecord",
    "StoreError",
    "StoredOrder",
    "TradingStore",
    "WindowSettlement",
    "iso",
    "parse_ts",
    "sqlalchemy_url",
]
