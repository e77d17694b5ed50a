"""A fake Binance spot REST venue on 127.0.0.1 for driving the real ccxt client in tests.

Serves `/api/v3/time`, `/api/v3/exchangeInfo`, `/api/v3/klines` (from candles given as a polars frame in
the candle schema), `/api/v3/aggTrades` (from a trades frame: symbol, ts, price, qty, buyer_is_maker,
trade_id) and `/api/v3/depth` (a small book around each symbol's last close). Faults can be scripted on
the data endpoints (klines, aggTrades, depth): answer 429 for the next N requests, drop the connection
(close without a reply) on the next N, drop from the K-th data request on, or leave a hole: bars missing
from pages that start before them, served when asked for at the hole (`transient_holes`). Every kline
request is recorded in `requests`, every aggTrades request in `trade_requests`.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import polars as pl

from pipelines.marketdata.binance_wire import spot_symbol_info
from tests.fakes.json_http import DROP, LocalJsonVenue

SERVER_TIME_MS = 1_800_000_000_000


class FakeBinance(LocalJsonVenue):
    def __init__(self, candles: pl.DataFrame, interval_ms: int = 300_000, trades: pl.DataFrame | None = None):
        self.candles = candles.sort("symbol", "ts")
        self.trades = trades.sort("symbol", "ts", "trade_id") if trades is not None else None
        self.interval_ms = interval_ms
        self.requests: list[dict[str, str]] = []
        self.trade_requests: list[dict[str, str]] = []
        self.depth_requests = 0
        self.exchange_info_requests = 0
        self.fail_429 = 0
        self.fail_status = 429  # what `fail_429` answers: 429 (rate limit) or 418 (IP ban after ignoring 429s)
        self.drop_connections = 0
        # Drop every data request from the n-th (1-based, counted over all data endpoints) for `drop_count`.
        self.drop_from_request: int | None = None
        self.drop_count = 0
        # (symbol, start, end): bars missing from pages that start before `start` (a venue that lags or
        # pages over a hole); a request starting inside the hole gets them.
        self.transient_holes: list[tuple[str, datetime, datetime]] = []
        self._data_requests = 0
        self._lock = threading.Lock()
        super().__init__()

    def ccxt_urls(self) -> dict[str, str]:
        """Values for ccxt's `urls['api']` so the real binance client talks to this fake."""
        return {"public": f"{self.base_url}/api/v3", "private": f"{self.base_url}/api/v3"}

    def _fault(self) -> tuple[int, Any] | None:
        """The scripted fault for this data request, if any (called under the lock)."""
        self._data_requests += 1
        if self.drop_from_request is not None and self._data_requests >= self.drop_from_request and self.drop_count:
            self.drop_count -= 1
            return DROP, None
        if self.drop_connections > 0:
            self.drop_connections -= 1
            return DROP, None
        if self.fail_429 > 0:
            self.fail_429 -= 1
            return self.fail_status, {
                "code": -1003,
                "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE.",
            }
        return None

    def handle(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v3/time":
            return 200, {"serverTime": SERVER_TIME_MS}
        if path == "/api/v3/exchangeInfo":
            with self._lock:
                self.exchange_info_requests += 1
            return 200, {
                "timezone": "UTC",
                "serverTime": SERVER_TIME_MS,
                "rateLimits": [],
                "symbols": self._symbols(),
            }
        if path in ("/api/v3/klines", "/api/v3/aggTrades", "/api/v3/depth"):
            with self._lock:
                if path == "/api/v3/klines":
                    self.requests.append(query)
                elif path == "/api/v3/aggTrades":
                    self.trade_requests.append(query)
                else:
                    self.depth_requests += 1
                fault = self._fault()
            if fault is not None:
                return fault
            if path == "/api/v3/klines":
                return 200, self._klines(query)
            if path == "/api/v3/aggTrades":
                return 200, self._agg_trades(query)
            return 200, self._depth(query)
        return 404, {"code": -1, "msg": f"no route {path}"}

    def _symbol(self, venue_id: str | None) -> str | None:
        return next((s for s in self.candles["symbol"].unique().to_list() if s.replace("/", "") == venue_id), None)

    def _symbols(self) -> list[dict[str, Any]]:
        return [
            spot_symbol_info(*symbol.split("/"), tick_size="0.01000000", step_size="0.00001000", min_price="0.00000100")
            for symbol in self.candles["symbol"].unique().sort().to_list()
        ]

    def _klines(self, query: dict[str, str]) -> list[list[Any]]:
        symbol = self._symbol(query.get("symbol"))
        if symbol is None:
            return []
        start = int(query.get("startTime", 0))
        limit = int(query.get("limit", 500))
        rows = (
            self.candles.filter(pl.col("symbol") == symbol)
            .with_columns(pl.col("ts").dt.epoch("ms").alias("ms"))
            .filter(pl.col("ms") >= start)
            .head(limit)
        )
        for hole_symbol, a, b in self.transient_holes:
            # Left out of every answer that starts before the hole; asked for at the hole, the bars are there.
            if hole_symbol == symbol and start < int(a.timestamp() * 1000):
                rows = rows.filter(~((pl.col("ts") >= a) & (pl.col("ts") < b)))
        return [
            [
                r["ms"],
                str(r["open"]),
                str(r["high"]),
                str(r["low"]),
                str(r["close"]),
                str(r["volume"]),
                r["ms"] + self.interval_ms - 1,
                "0",
                10,
                "0",
                "0",
                "0",
            ]
            for r in rows.iter_rows(named=True)
        ]

    def _agg_trades(self, query: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(query.get("symbol"))
        if symbol is None or self.trades is None:
            return []
        start = int(query.get("startTime", 0))
        end = int(query.get("endTime", 2**62))
        if "startTime" in query and "endTime" in query and end - start > 3_600_000:
            return []  # Binance refuses windows over an hour (ccxt never asks for one here)
        limit = int(query.get("limit", 500))
        rows = (
            self.trades.filter(pl.col("symbol") == symbol)
            .with_columns(pl.col("ts").dt.epoch("ms").alias("ms"))
            .filter((pl.col("ms") >= start) & (pl.col("ms") <= end))
            .head(limit)
        )
        return [
            {
                "a": int(r["trade_id"]),
                "p": str(r["price"]),
                "q": str(r["qty"]),
                "f": int(r["trade_id"]),
                "l": int(r["trade_id"]),
                "T": r["ms"],
                "m": bool(r["buyer_is_maker"]),
                "M": True,
            }
            for r in rows.iter_rows(named=True)
        ]

    def _depth(self, query: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(query.get("symbol"))
        limit = int(query.get("limit", 100))
        close = float(self.candles.filter(pl.col("symbol") == symbol)["close"][-1]) if symbol else 1.0
        tick = close * 1e-4
        return {
            "lastUpdateId": 1027024,
            "bids": [[f"{close - (i + 1) * tick:.8f}", f"{1.0 + i:.4f}"] for i in range(limit)],
            "asks": [[f"{close + (i + 1) * tick:.8f}", f"{2.0 + i:.4f}"] for i in range(limit)],
        }
